//! The bucket operations the controller needs, path-style (`{endpoint}/{bucket}`) so that any
//! S3-compatible store works without DNS for each bucket.
//!
//! Every operation takes the transport and the current time: the transport because the plugin
//! and the tests send requests differently, the time because each request is signed for it and
//! the store refuses a request signed too far from its own clock.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use md5::{Digest as _, Md5};

use super::error::{Error, Result};
use super::sigv4::{self, AmzDate, EMPTY_SHA256, Signer};
use super::transport::{HttpRequest, HttpResponse, Transport};
use super::xml;

/// An access key for the store.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// One lifecycle rule: objects (under `prefix`, or all of them) expire `expiration_days` after
/// they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// Unique within the bucket; at most 255 characters.
    pub id: String,
    pub prefix: Option<String>,
    pub expiration_days: u32,
}

/// One CORS rule, as S3 has it: browsers from `allowed_origins` may use `allowed_methods` with
/// `allowed_headers`, read `expose_headers`, and cache the preflight answer `max_age_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Among `GET`, `PUT`, `POST`, `DELETE` and `HEAD`, the methods S3 allows here.
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u32>,
}

/// A client for one store and one access key. Cheap to build: make one per reconcile.
#[derive(Debug, Clone)]
pub struct Client {
    /// `scheme://authority`, lowercase, no trailing slash.
    endpoint: String,
    /// What the `host` header carries and the signature covers.
    authority: String,
    region: String,
    credentials: Credentials,
}

/// One S3 call before signing.
struct Call<'a> {
    operation: &'static str,
    method: &'static str,
    bucket: &'a str,
    key: Option<&'a str>,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bucket configuration writes need `Content-MD5` on AWS (and Garage checks it on objects).
    content_md5: bool,
    content_type: Option<&'static str>,
}

impl<'a> Call<'a> {
    fn new(operation: &'static str, method: &'static str, bucket: &'a str) -> Call<'a> {
        Call {
            operation,
            method,
            bucket,
            key: None,
            query: Vec::new(),
            body: Vec::new(),
            content_md5: false,
            content_type: None,
        }
    }

    /// Adds a query parameter; a sub-resource such as `cors` has an empty value.
    fn query(mut self, key: &str, value: &str) -> Call<'a> {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    fn xml_body(mut self, body: String) -> Call<'a> {
        self.body = body.into_bytes();
        self.content_md5 = true;
        self.content_type = Some("application/xml");
        self
    }
}

impl Client {
    /// A client for the store at `endpoint` (`http://host:port` or `https://host`, no path),
    /// signing for `region`, which must be the store's own (Garage's `s3_region`, often `garage`).
    pub fn new(endpoint: &str, region: &str, credentials: Credentials) -> Result<Client> {
        let (endpoint, authority) = parse_endpoint(endpoint)?;
        if region.is_empty() || region.contains(['/', ' ']) {
            return Err(Error::InvalidInput {
                what: "region",
                value: region.to_owned(),
                reason: "give the store's region, such as us-east-1 or garage".into(),
            });
        }
        if credentials.access_key_id.trim().is_empty() {
            return Err(Error::InvalidInput {
                what: "access key id",
                value: credentials.access_key_id,
                reason: "it is empty".into(),
            });
        }
        if credentials.secret_access_key.is_empty() {
            return Err(Error::InvalidInput {
                what: "secret access key",
                value: String::new(),
                reason: "it is empty".into(),
            });
        }
        Ok(Client {
            endpoint,
            authority,
            region: region.to_owned(),
            credentials,
        })
    }

    /// `scheme://authority`, as normalized.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether the bucket exists: `true` on 200, `false` on 404. A 403 is an [`Error::Auth`]:
    /// the bucket may exist under another owner, or the credentials are wrong.
    pub fn head_bucket(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<bool> {
        let call = Call::new("HeadBucket", "HEAD", bucket);
        let response = self.send(transport, now, &call)?;
        match response.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(Error::from_answer(
                call.operation,
                bucket,
                response.status,
                &response.body,
            )),
        }
    }

    /// Creates the bucket; a bucket this key already owns is success, so this can run on every
    /// reconcile. Outside us-east-1 the region goes in a `CreateBucketConfiguration`, which a
    /// store refuses when it is not its own.
    pub fn create_bucket(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<()> {
        let mut call = Call::new("CreateBucket", "PUT", bucket);
        // AWS refuses a LocationConstraint of us-east-1: that region is the default.
        if self.region != "us-east-1" {
            let mut body = format!(
                "<CreateBucketConfiguration xmlns=\"{}\">",
                xml::S3_NAMESPACE
            );
            xml::element(&mut body, "LocationConstraint", &self.region);
            body.push_str("</CreateBucketConfiguration>");
            call = call.xml_body(body);
        }
        match self.expect_success(transport, now, &call) {
            Ok(_) => Ok(()),
            // 409 on Garage and outside us-east-1 on AWS; us-east-1 on AWS answers 200.
            Err(Error::Status(failure)) if failure.code == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an empty bucket. A bucket with objects is refused with
    /// [`Error::BucketNotEmpty`]; a missing one is [`Error::NoSuchBucket`].
    pub fn delete_bucket(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<()> {
        let call = Call::new("DeleteBucket", "DELETE", bucket);
        self.expect_success(transport, now, &call).map(drop)
    }

    /// Whether the bucket holds no object, by listing at most one (ListObjectsV2).
    pub fn is_empty(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<bool> {
        let call = Call::new("ListObjectsV2", "GET", bucket)
            .query("list-type", "2")
            .query("max-keys", "1");
        let response = self.expect_success(transport, now, &call)?;
        let root = parse_answer(&call, &response, "ListBucketResult")?;
        Ok(root.child("Contents").is_none())
    }

    /// Replaces the bucket's lifecycle configuration with these rules (at least one; to remove
    /// them all, use [`Client::delete_lifecycle`]).
    pub fn put_lifecycle(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
        rules: &[LifecycleRule],
    ) -> Result<()> {
        let body = lifecycle_document(rules)?;
        let call = Call::new("PutBucketLifecycleConfiguration", "PUT", bucket)
            .query("lifecycle", "")
            .xml_body(body);
        self.expect_success(transport, now, &call).map(drop)
    }

    /// The bucket's lifecycle rules, empty when it has none. Only what [`LifecycleRule`] holds
    /// is read back: parts this client never writes (disabled rules, size filters, expiry by
    /// date, multipart clean-up) are left out.
    pub fn get_lifecycle(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<Vec<LifecycleRule>> {
        let call =
            Call::new("GetBucketLifecycleConfiguration", "GET", bucket).query("lifecycle", "");
        let response = match self.expect_success(transport, now, &call) {
            Ok(response) => response,
            Err(Error::Status(f)) if f.code == "NoSuchLifecycleConfiguration" => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let root = parse_answer(&call, &response, "LifecycleConfiguration")?;
        Ok(root.children("Rule").map(lifecycle_rule).collect())
    }

    /// Removes every lifecycle rule; a bucket without any is fine.
    pub fn delete_lifecycle(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<()> {
        let call = Call::new("DeleteBucketLifecycle", "DELETE", bucket).query("lifecycle", "");
        self.expect_success(transport, now, &call).map(drop)
    }

    /// Replaces the bucket's CORS configuration with these rules (at least one; to remove them
    /// all, use [`Client::delete_cors`]).
    pub fn put_cors(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
        rules: &[CorsRule],
    ) -> Result<()> {
        let body = cors_document(rules)?;
        let call = Call::new("PutBucketCors", "PUT", bucket)
            .query("cors", "")
            .xml_body(body);
        self.expect_success(transport, now, &call).map(drop)
    }

    /// The bucket's CORS rules, empty when it has none.
    pub fn get_cors(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<Vec<CorsRule>> {
        let call = Call::new("GetBucketCors", "GET", bucket).query("cors", "");
        let response = match self.expect_success(transport, now, &call) {
            Ok(response) => response,
            Err(Error::Status(f)) if f.code == "NoSuchCORSConfiguration" => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let root = parse_answer(&call, &response, "CORSConfiguration")?;
        root.children("CORSRule")
            .map(|rule| cors_rule(&call, rule))
            .collect()
    }

    /// Removes every CORS rule; a bucket without any is fine.
    pub fn delete_cors(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
    ) -> Result<()> {
        let call = Call::new("DeleteBucketCors", "DELETE", bucket).query("cors", "");
        self.expect_success(transport, now, &call).map(drop)
    }

    /// Writes an object. The controller does not need it; tests and diagnostics do (a bucket
    /// made non-empty, a probe that the key may write).
    pub fn put_object(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
        key: &str,
        body: &[u8],
    ) -> Result<()> {
        if key.is_empty() || key.len() > 1024 {
            return Err(Error::InvalidInput {
                what: "object key",
                value: key.to_owned(),
                reason: "an object key has 1 to 1024 bytes".into(),
            });
        }
        let mut call = Call::new("PutObject", "PUT", bucket);
        call.key = Some(key);
        call.body = body.to_vec();
        call.content_md5 = true;
        call.content_type = Some("application/octet-stream");
        self.expect_success(transport, now, &call).map(drop)
    }

    /// Deletes an object; one that does not exist is success, as S3 answers 204 either way.
    /// The controller never deletes objects; tests and diagnostics do (emptying a bucket).
    pub fn delete_object(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        bucket: &str,
        key: &str,
    ) -> Result<()> {
        let mut call = Call::new("DeleteObject", "DELETE", bucket);
        call.key = Some(key);
        self.expect_success(transport, now, &call).map(drop)
    }

    /// The names of the buckets the key can see (ListBuckets, `GET /`). A signed request that
    /// touches no bucket: what checking a store and its credentials needs.
    pub fn list_buckets(&self, transport: &dyn Transport, now: SystemTime) -> Result<Vec<String>> {
        let call = Call::new("ListBuckets", "GET", "");
        let response = self.expect_success(transport, now, &call)?;
        let root = parse_answer(&call, &response, "ListAllMyBucketsResult")?;
        let mut names: Vec<String> = root
            .child("Buckets")
            .map(|buckets| {
                buckets
                    .children("Bucket")
                    .filter_map(|b| b.child_text("Name").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// Sends the call and turns any status but 2xx into an error.
    fn expect_success(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        call: &Call<'_>,
    ) -> Result<HttpResponse> {
        let response = self.send(transport, now, call)?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(Error::from_answer(
                call.operation,
                call.bucket,
                response.status,
                &response.body,
            ))
        }
    }

    /// Signs and sends; the only error is that no answer came.
    fn send(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        call: &Call<'_>,
    ) -> Result<HttpResponse> {
        // An empty bucket is a service call (ListBuckets): the path is `/`.
        if !call.bucket.is_empty() {
            check_bucket_name(call.bucket)?;
        }
        let decoded_path = match call.key {
            Some(key) => format!("/{}/{key}", call.bucket),
            None => format!("/{}", call.bucket),
        };
        let path = sigv4::encode_path(&decoded_path);
        let date = AmzDate::new(now);
        let payload_sha256 = if call.body.is_empty() {
            EMPTY_SHA256.to_owned()
        } else {
            sigv4::sha256_hex(&call.body)
        };

        let mut headers = vec![
            ("host".to_owned(), self.authority.clone()),
            ("x-amz-content-sha256".to_owned(), payload_sha256.clone()),
            ("x-amz-date".to_owned(), date.as_str().to_owned()),
        ];
        if call.content_md5 {
            let digest = Md5::digest(&call.body);
            headers.push((
                "content-md5".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(digest),
            ));
        }
        if let Some(content_type) = call.content_type {
            headers.push(("content-type".to_owned(), content_type.to_owned()));
        }

        let signer = Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            region: &self.region,
            service: "s3",
            date,
        };
        let signature = signer.sign(&sigv4::Request {
            method: call.method,
            path: &path,
            query: &call.query,
            headers: &headers,
            payload_sha256: &payload_sha256,
        });
        headers.push(("authorization".to_owned(), signature.authorization));

        let mut url = format!("{}{path}", self.endpoint);
        if !call.query.is_empty() {
            url.push('?');
            url.push_str(&sigv4::encode_query(&call.query));
        }
        transport
            .send(HttpRequest {
                method: call.method.to_owned(),
                url,
                headers,
                body: call.body.clone(),
            })
            .map_err(|source| Error::Unreachable {
                endpoint: self.endpoint.clone(),
                operation: call.operation,
                source,
            })
    }
}

/// Splits `scheme://authority[/]` into the normalized endpoint and the authority.
fn parse_endpoint(endpoint: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| invalid("it has no scheme: write http://host:port or https://host"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(invalid(
            "it has a path, query or fragment: buckets are addressed right after the host \
             (path style), so give only scheme, host and port",
        ));
    }
    if authority.contains('@') {
        return Err(invalid(
            "it has user information: the access key goes in the credentials, not the URL",
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 address needs its closing bracket"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("the address in brackets is not IPv6"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid("junk after the IPv6 address"))?,
            ),
        };
        (format!("[{host}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(invalid("it has no host"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(invalid(
            "the host may hold only letters, digits, '-' and '.'",
        ));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    let authority = authority.to_ascii_lowercase();
    Ok((format!("{scheme}://{authority}"), authority))
}

/// S3's bucket naming rules, checked here because the name becomes part of the URL path.
fn check_bucket_name(name: &str) -> Result<()> {
    let reason = if !(3..=63).contains(&name.len()) {
        Some("a bucket name has 3 to 63 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("a bucket name holds only lowercase letters, digits, '-' and '.'")
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("a bucket name starts and ends with a letter or a digit")
    } else if name.contains("..") {
        Some("a bucket name has no two dots in a row")
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("a bucket name is not an IP address")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidInput {
            what: "bucket name",
            value: name.to_owned(),
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

fn parse_answer(call: &Call<'_>, response: &HttpResponse, root: &str) -> Result<xml::Element> {
    let invalid = |reason: String| Error::InvalidResponse {
        operation: call.operation,
        bucket: call.bucket.to_owned(),
        reason,
    };
    let element = xml::parse(&response.body).map_err(|e| invalid(format!("not XML: {e}")))?;
    if element.name != root {
        return Err(invalid(format!(
            "expected <{root}>, got <{}>",
            element.name
        )));
    }
    Ok(element)
}

fn lifecycle_document(rules: &[LifecycleRule]) -> Result<String> {
    let invalid = |value: &str, reason: &str| Error::InvalidInput {
        what: "lifecycle rule",
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if rules.is_empty() {
        return Err(invalid(
            "",
            "a lifecycle configuration needs at least one rule: delete it to remove them all",
        ));
    }
    let mut body = format!("<LifecycleConfiguration xmlns=\"{}\">", xml::S3_NAMESPACE);
    for (index, rule) in rules.iter().enumerate() {
        if rule.id.is_empty() || rule.id.chars().count() > 255 {
            return Err(invalid(&rule.id, "a rule id has 1 to 255 characters"));
        }
        if rules[..index].iter().any(|r| r.id == rule.id) {
            return Err(invalid(&rule.id, "two rules have this id"));
        }
        if rule.expiration_days == 0 {
            return Err(invalid(&rule.id, "objects expire after at least 1 day"));
        }
        body.push_str("<Rule>");
        xml::element(&mut body, "ID", &rule.id);
        // An empty <Filter/> applies the rule to the whole bucket; the older top-level <Prefix>
        // is ignored by Garage.
        match &rule.prefix {
            Some(prefix) => {
                body.push_str("<Filter>");
                xml::element(&mut body, "Prefix", prefix);
                body.push_str("</Filter>");
            }
            None => body.push_str("<Filter></Filter>"),
        }
        xml::element(&mut body, "Status", "Enabled");
        body.push_str("<Expiration>");
        xml::element(&mut body, "Days", &rule.expiration_days.to_string());
        body.push_str("</Expiration></Rule>");
    }
    body.push_str("</LifecycleConfiguration>");
    Ok(body)
}

fn lifecycle_rule(rule: &xml::Element) -> LifecycleRule {
    let filter = rule.child("Filter");
    let prefix = filter
        .and_then(|f| {
            f.child_text("Prefix")
                .or_else(|| f.child("And")?.child_text("Prefix"))
        })
        .or_else(|| rule.child_text("Prefix"))
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    LifecycleRule {
        id: rule.child_text("ID").unwrap_or_default().to_owned(),
        prefix,
        expiration_days: rule
            .child("Expiration")
            .and_then(|e| e.child_text("Days"))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    }
}

const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

fn cors_document(rules: &[CorsRule]) -> Result<String> {
    let invalid = |value: String, reason: &str| Error::InvalidInput {
        what: "CORS rule",
        value,
        reason: reason.to_owned(),
    };
    if rules.is_empty() {
        return Err(invalid(
            String::new(),
            "a CORS configuration needs at least one rule: delete it to remove them all",
        ));
    }
    if rules.len() > 100 {
        return Err(invalid(
            format!("{} rules", rules.len()),
            "S3 allows at most 100 CORS rules",
        ));
    }
    let mut body = format!("<CORSConfiguration xmlns=\"{}\">", xml::S3_NAMESPACE);
    for rule in rules {
        let name = || {
            rule.id
                .clone()
                .unwrap_or_else(|| format!("{:?}", rule.allowed_origins))
        };
        if rule.allowed_origins.is_empty() || rule.allowed_origins.iter().any(String::is_empty) {
            return Err(invalid(
                name(),
                "a CORS rule needs at least one non-empty origin",
            ));
        }
        if rule.allowed_methods.is_empty() {
            return Err(invalid(name(), "a CORS rule needs at least one method"));
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !CORS_METHODS.contains(&m.as_str()))
        {
            return Err(invalid(
                name(),
                &format!("method {method:?} is not one of GET, PUT, POST, DELETE, HEAD"),
            ));
        }
        if let Some(id) = &rule.id
            && (id.is_empty() || id.chars().count() > 255)
        {
            return Err(invalid(name(), "a rule id has 1 to 255 characters"));
        }
        // Each list stays together: Garage's XML reader wants the repeated elements adjacent.
        body.push_str("<CORSRule>");
        if let Some(id) = &rule.id {
            xml::element(&mut body, "ID", id);
        }
        if let Some(max_age) = rule.max_age_seconds {
            xml::element(&mut body, "MaxAgeSeconds", &max_age.to_string());
        }
        for (name, values) in [
            ("AllowedOrigin", &rule.allowed_origins),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedHeader", &rule.allowed_headers),
            ("ExposeHeader", &rule.expose_headers),
        ] {
            for value in values {
                xml::element(&mut body, name, value);
            }
        }
        body.push_str("</CORSRule>");
    }
    body.push_str("</CORSConfiguration>");
    Ok(body)
}

fn cors_rule(call: &Call<'_>, rule: &xml::Element) -> Result<CorsRule> {
    let texts = |name| rule.children(name).map(|e| e.text.clone()).collect();
    let max_age_seconds = match rule.child_text("MaxAgeSeconds") {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| Error::InvalidResponse {
            operation: call.operation,
            bucket: call.bucket.to_owned(),
            reason: format!("MaxAgeSeconds {text:?} is not a number of seconds"),
        })?),
    };
    Ok(CorsRule {
        id: rule.child_text("ID").map(str::to_owned),
        allowed_origins: texts("AllowedOrigin"),
        allowed_methods: texts("AllowedMethod"),
        allowed_headers: texts("AllowedHeader"),
        expose_headers: texts("ExposeHeader"),
        max_age_seconds,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::s3::TransportError;

    /// Records each request and answers with the queued responses, in order.
    #[derive(Default)]
    struct Scripted {
        answers: RefCell<Vec<Result<HttpResponse, TransportError>>>,
        sent: RefCell<Vec<HttpRequest>>,
    }

    impl Scripted {
        fn answering(answers: Vec<(u16, &str)>) -> Scripted {
            Scripted {
                answers: RefCell::new(
                    answers
                        .into_iter()
                        .map(|(status, body)| {
                            Ok(HttpResponse {
                                status,
                                headers: Vec::new(),
                                body: body.as_bytes().to_vec(),
                            })
                        })
                        .rev()
                        .collect(),
                ),
                sent: RefCell::default(),
            }
        }

        fn last(&self) -> HttpRequest {
            self.sent
                .borrow()
                .last()
                .cloned()
                .expect("a request was sent")
        }
    }

    impl Transport for Scripted {
        fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent.borrow_mut().push(request);
            self.answers
                .borrow_mut()
                .pop()
                .unwrap_or_else(|| Err(TransportError::new("no answer scripted")))
        }
    }

    fn client(region: &str) -> Client {
        Client::new(
            "http://127.0.0.1:3900/",
            region,
            Credentials {
                access_key_id: "GK0123".into(),
                secret_access_key: "secret".into(),
            },
        )
        .unwrap()
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn accepts_plain_endpoints_and_normalizes_them() {
        let cases = [
            (
                "http://127.0.0.1:3900",
                "http://127.0.0.1:3900",
                "127.0.0.1:3900",
            ),
            (
                "HTTPS://S3.Example.com/",
                "https://s3.example.com",
                "s3.example.com",
            ),
            ("http://[::1]:9000", "http://[::1]:9000", "[::1]:9000"),
            (" http://minio ", "http://minio", "minio"),
        ];
        for (given, endpoint, authority) in cases {
            assert_eq!(
                parse_endpoint(given).unwrap(),
                (endpoint.to_owned(), authority.to_owned()),
                "{given}"
            );
        }
    }

    #[test]
    fn refuses_endpoints_it_could_not_address_buckets_under() {
        let cases = [
            ("127.0.0.1:3900", "no scheme"),
            ("ftp://host", "http or https"),
            ("http://host/prefix", "path"),
            ("http://host?x=1", "path, query"),
            ("http://key:secret@host", "user information"),
            ("http://", "no host"),
            ("http://host:0", "port"),
            ("http://host:http", "port"),
            ("http://[::1", "closing bracket"),
            ("http://ho st", "letters, digits"),
        ];
        for (given, reason) in cases {
            let error = parse_endpoint(given).unwrap_err().to_string();
            assert!(error.contains(reason), "{given}: {error}");
        }
    }

    #[test]
    fn refuses_empty_credentials_without_echoing_the_secret() {
        let error = Client::new(
            "http://h",
            "garage",
            Credentials {
                access_key_id: "GK1".into(),
                secret_access_key: String::new(),
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid secret access key \"\": it is empty"
        );
        let debug = format!(
            "{:?}",
            Credentials {
                access_key_id: "GK1".into(),
                secret_access_key: "hunter2".into()
            }
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn refuses_bucket_names_that_s3_would_refuse() {
        for name in [
            "ab",
            "Photos",
            "-photos",
            "photos-",
            "a..b",
            "10.0.0.1",
            "a/b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(name).is_err(), "{name}");
        }
        for name in ["abc", "photos-2024", "my.bucket", &"a".repeat(63)] {
            assert!(check_bucket_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn signs_a_path_style_request_for_the_store_region() {
        let transport = Scripted::answering(vec![(200, "")]);
        assert!(
            client("garage")
                .head_bucket(&transport, now(), "photos")
                .unwrap()
        );
        let sent = transport.last();
        assert_eq!(sent.method, "HEAD");
        assert_eq!(sent.url, "http://127.0.0.1:3900/photos");
        assert_eq!(header(&sent, "host"), Some("127.0.0.1:3900"));
        assert_eq!(header(&sent, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(header(&sent, "x-amz-content-sha256"), Some(EMPTY_SHA256));
        let authorization = header(&sent, "authorization").unwrap();
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=GK0123/20150830/garage/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
            ),
            "{authorization}"
        );
    }

    #[test]
    fn tells_a_missing_bucket_from_a_forbidden_one() {
        let transport = Scripted::answering(vec![(404, ""), (403, "")]);
        let client = client("garage");
        assert!(!client.head_bucket(&transport, now(), "photos").unwrap());
        assert!(matches!(
            client.head_bucket(&transport, now(), "photos"),
            Err(Error::Auth(_))
        ));
    }

    #[test]
    fn names_the_region_when_creating_outside_us_east_1() {
        let transport = Scripted::answering(vec![(200, ""), (200, "")]);
        client("garage")
            .create_bucket(&transport, now(), "photos")
            .unwrap();
        let sent = transport.last();
        assert_eq!(
            String::from_utf8(sent.body.clone()).unwrap(),
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>garage</LocationConstraint></CreateBucketConfiguration>"
        );
        assert!(header(&sent, "content-md5").is_some());

        client("us-east-1")
            .create_bucket(&transport, now(), "photos")
            .unwrap();
        assert!(transport.last().body.is_empty());
    }

    #[test]
    fn takes_a_bucket_already_owned_as_created() {
        let owned = "<Error><Code>BucketAlreadyOwnedByYou</Code><Message>mine</Message></Error>";
        let taken = "<Error><Code>BucketAlreadyExists</Code><Message>theirs</Message></Error>";
        let transport = Scripted::answering(vec![(409, owned), (409, taken)]);
        let client = client("garage");
        client.create_bucket(&transport, now(), "photos").unwrap();
        assert!(matches!(
            client.create_bucket(&transport, now(), "photos"),
            Err(Error::BucketAlreadyExists(f)) if f.message == "theirs"
        ));
    }

    #[test]
    fn reports_a_transport_failure_as_unreachable() {
        let transport = Scripted::default();
        let error = client("garage")
            .delete_bucket(&transport, now(), "photos")
            .unwrap_err();
        assert!(matches!(
            error,
            Error::Unreachable {
                operation: "DeleteBucket",
                ..
            }
        ));
        assert!(
            error.to_string().contains("http://127.0.0.1:3900"),
            "{error}"
        );
    }

    #[test]
    fn lists_at_most_one_key_to_tell_if_a_bucket_is_empty() {
        let empty =
            "<ListBucketResult><Name>photos</Name><KeyCount>0</KeyCount></ListBucketResult>";
        let full = "<ListBucketResult><KeyCount>1</KeyCount><Contents><Key>a</Key></Contents></ListBucketResult>";
        let transport = Scripted::answering(vec![(200, empty), (200, full), (200, "<Error/>")]);
        let client = client("garage");
        assert!(client.is_empty(&transport, now(), "photos").unwrap());
        assert_eq!(
            transport.last().url,
            "http://127.0.0.1:3900/photos?list-type=2&max-keys=1"
        );
        assert!(!client.is_empty(&transport, now(), "photos").unwrap());
        assert!(matches!(
            client.is_empty(&transport, now(), "photos"),
            Err(Error::InvalidResponse { .. })
        ));
    }

    #[test]
    fn writes_lifecycle_rules_with_escaped_prefixes_and_an_md5() {
        let transport = Scripted::answering(vec![(200, "")]);
        let rules = [
            LifecycleRule {
                id: "logs".into(),
                prefix: Some("logs/<&>".into()),
                expiration_days: 7,
            },
            LifecycleRule {
                id: "all".into(),
                prefix: None,
                expiration_days: 365,
            },
        ];
        client("garage")
            .put_lifecycle(&transport, now(), "photos", &rules)
            .unwrap();
        let sent = transport.last();
        assert_eq!(sent.url, "http://127.0.0.1:3900/photos?lifecycle");
        let body = String::from_utf8(sent.body.clone()).unwrap();
        assert!(
            body.contains(
                "<Rule><ID>logs</ID><Filter><Prefix>logs/&lt;&amp;&gt;</Prefix></Filter>\
                 <Status>Enabled</Status><Expiration><Days>7</Days></Expiration></Rule>"
            ),
            "{body}"
        );
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&sent.body));
        assert_eq!(header(&sent, "content-md5"), Some(md5.as_str()));
        assert_eq!(
            header(&sent, "x-amz-content-sha256"),
            Some(sigv4::sha256_hex(&sent.body).as_str())
        );
        assert!(header(&sent, "authorization").unwrap().contains(
            "SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date,"
        ));
    }

    #[test]
    fn refuses_lifecycle_rules_s3_would_refuse() {
        let rule = |id: &str, days| LifecycleRule {
            id: id.into(),
            prefix: None,
            expiration_days: days,
        };
        let cases: [(&[LifecycleRule], &str); 4] = [
            (&[], "at least one rule"),
            (&[rule("a", 0)], "at least 1 day"),
            (&[rule("", 1)], "1 to 255"),
            (&[rule("a", 1), rule("a", 2)], "two rules"),
        ];
        let transport = Scripted::default();
        for (rules, reason) in cases {
            let error = client("garage")
                .put_lifecycle(&transport, now(), "photos", rules)
                .unwrap_err();
            assert!(error.to_string().contains(reason), "{error}");
        }
        assert!(transport.sent.borrow().is_empty());
    }

    #[test]
    fn reads_lifecycle_rules_back_and_no_configuration_as_none() {
        let document = "<LifecycleConfiguration><Rule><ID>logs</ID><Status>Enabled</Status>\
            <Filter><Prefix>logs/</Prefix></Filter><Expiration><Days>7</Days></Expiration></Rule>\
            <Rule><ID>all</ID><Status>Enabled</Status><Expiration><Days>30</Days></Expiration>\
            </Rule></LifecycleConfiguration>";
        let none =
            "<Error><Code>NoSuchLifecycleConfiguration</Code><Message>none</Message></Error>";
        let transport = Scripted::answering(vec![(200, document), (404, none)]);
        let client = client("garage");
        assert_eq!(
            client.get_lifecycle(&transport, now(), "photos").unwrap(),
            [
                LifecycleRule {
                    id: "logs".into(),
                    prefix: Some("logs/".into()),
                    expiration_days: 7
                },
                LifecycleRule {
                    id: "all".into(),
                    prefix: None,
                    expiration_days: 30
                },
            ]
        );
        assert_eq!(
            client.get_lifecycle(&transport, now(), "photos").unwrap(),
            []
        );
    }

    #[test]
    fn writes_cors_rules_with_each_list_together() {
        let transport = Scripted::answering(vec![(200, "")]);
        let rule = CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://a.example".into(), "https://b.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        };
        client("garage")
            .put_cors(&transport, now(), "photos", std::slice::from_ref(&rule))
            .unwrap();
        let sent = transport.last();
        assert_eq!(sent.url, "http://127.0.0.1:3900/photos?cors");
        assert_eq!(
            String::from_utf8(sent.body).unwrap(),
            "<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><CORSRule>\
             <ID>web</ID><MaxAgeSeconds>600</MaxAgeSeconds>\
             <AllowedOrigin>https://a.example</AllowedOrigin><AllowedOrigin>https://b.example</AllowedOrigin>\
             <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>\
             <AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
             </CORSRule></CORSConfiguration>"
        );
    }

    #[test]
    fn refuses_cors_rules_s3_would_refuse() {
        let rule = |origins: &[&str], methods: &[&str]| CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        };
        let cases = [
            (vec![], "at least one rule"),
            (vec![rule(&[], &["GET"])], "origin"),
            (vec![rule(&["*"], &[])], "at least one method"),
            (vec![rule(&["*"], &["PATCH"])], "\"PATCH\" is not one of"),
        ];
        let transport = Scripted::default();
        for (rules, reason) in cases {
            let error = client("garage")
                .put_cors(&transport, now(), "photos", &rules)
                .unwrap_err();
            assert!(error.to_string().contains(reason), "{error}");
        }
    }

    #[test]
    fn puts_an_object_under_an_encoded_key() {
        let transport = Scripted::answering(vec![(200, "")]);
        client("garage")
            .put_object(&transport, now(), "photos", "a dir/b+c.txt", b"hello")
            .unwrap();
        let sent = transport.last();
        assert_eq!(sent.url, "http://127.0.0.1:3900/photos/a%20dir/b%2Bc.txt");
        assert_eq!(sent.body, b"hello");
        // base64(md5("hello")), as `openssl dgst -md5 -binary | base64` gives it.
        assert_eq!(
            header(&sent, "content-md5"),
            Some("XUFAKrxLKna5cZ2REBfFkg==")
        );
    }
}
