//! AWS Signature Version 4, header-based, as S3 and S3-compatible stores check it.
//!
//! Written on `hmac` + `sha2` rather than taken from `aws-sigv4`: that crate pulls in about 70
//! crates (tokio, the smithy runtime, `time`, `tracing`) for one HMAC chain, and this module is
//! compiled into a WebAssembly component. The unit tests below pin it to the published vectors:
//! the AWS SigV4 test suite (service `service`) and the S3 documentation's worked examples.
//!
//! What is signed, in order (the "canonical request"):
//! method, URI-encoded path, sorted URI-encoded query, lowercase sorted headers with their
//! trimmed values, the list of signed header names, and the hex SHA-256 of the payload.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Hex SHA-256 of an empty payload: what a bodiless request puts in `x-amz-content-sha256`.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Who signs, where, and when. `date` is the request time, also sent as `x-amz-date`.
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub date: AmzDate,
}

/// The request as it will be sent. `path` is already URI-encoded (see [`encode_path`]) because
/// the same string goes on the wire; `query` holds decoded pairs, encoded here for signing.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Every header to sign, `host` and `x-amz-date` included; names in any case.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (S3 also sends it as `x-amz-content-sha256`).
    pub payload_sha256: &'a str,
}

/// The signature's parts, kept apart so tests can compare each stage with the published ones
/// (the client itself reads only `authorization`).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

impl Signer<'_> {
    pub(crate) fn sign(&self, request: &Request<'_>) -> Signature {
        let (canonical_headers, signed_headers) = canonical_headers(request.headers);
        let canonical_request = [
            request.method,
            request.path,
            &canonical_query(request.query),
            &canonical_headers,
            &signed_headers,
            request.payload_sha256,
        ]
        .join("\n");

        let scope = format!(
            "{}/{}/{}/aws4_request",
            self.date.day(),
            self.region,
            self.service
        );
        let string_to_sign = [
            ALGORITHM,
            self.date.as_str(),
            &scope,
            &sha256_hex(canonical_request.as_bytes()),
        ]
        .join("\n");

        // The key is derived from the secret through the date, region and service, so a leaked
        // signing key is only good for one day, one region and one service.
        let key = hmac(
            format!("AWS4{}", self.secret_access_key).as_bytes(),
            self.date.day(),
        );
        let key = hmac(&key, self.region);
        let key = hmac(&key, self.service);
        let key = hmac(&key, "aws4_request");
        let signature = hex::encode(hmac(&key, &string_to_sign));

        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        );
        Signature {
            canonical_request,
            string_to_sign,
            signature,
            authorization,
        }
    }
}

/// A request time in SigV4's basic ISO 8601 form, `YYYYMMDDTHHMMSSZ`, always UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmzDate(String);

impl AmzDate {
    /// A time before 1970 is taken as 1970: the store will refuse it as too old, which names the
    /// real problem (the clock) better than a panic would.
    pub(crate) fn new(now: SystemTime) -> AmzDate {
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
        let in_day = seconds % 86_400;
        AmzDate(format!(
            "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
            in_day / 3600,
            in_day % 3600 / 60,
            in_day % 60
        ))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// `YYYYMMDD`: the first element of the credential scope.
    fn day(&self) -> &str {
        &self.0[..8]
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, so that signing needs no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// SigV4's URI encoding: every byte but the unreserved `A-Z a-z 0-9 - _ . ~` as `%XX`
/// (uppercase hex). A space is `%20`, never `+`.
pub(crate) fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An S3 path from decoded segments (`/bucket/key`): S3 encodes each byte once and keeps the
/// slashes, unlike the other services, which encode the path twice.
pub(crate) fn encode_path(decoded: &str) -> String {
    uri_encode(decoded, true)
}

/// The query as it is sent: pairs in the given order, `key` alone when the value is empty
/// (`?lifecycle`), as the SDKs send sub-resources.
pub(crate) fn encode_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                uri_encode(k, false)
            } else {
                format!("{}={}", uri_encode(k, false), uri_encode(v, false))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Pairs sorted by encoded key, then encoded value, and always `key=value`, even when the value
/// is empty: `?lifecycle` signs as `lifecycle=`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical header block (each line `name:value\n`) and the `;`-joined signed names.
/// Names are lowercased and sorted; a repeated header's values are joined with commas in the
/// order given; values are trimmed and inner runs of spaces collapse to one.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    // A stable sort on names alone keeps the values of one header in request order.
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let block: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let names = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// 2015-08-30T12:36:00Z, the time of every request in the AWS SigV4 test suite.
    const SUITE_TIME: u64 = 1_440_938_160;
    /// 2013-05-24T00:00:00Z, the time of the S3 documentation's examples.
    const S3_DOC_TIME: u64 = 1_369_353_600;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Signs one request of the AWS SigV4 test suite (credentials `AKIDEXAMPLE`, region
    /// us-east-1, service `service`), whose requests all carry `Host` and `X-Amz-Date`.
    fn suite(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: &str,
    ) -> Signature {
        let signer = Signer {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "service",
            date: AmzDate::new(at(SUITE_TIME)),
        };
        let mut headers = pairs(&[("Host", "example.amazonaws.com")]);
        headers.extend(pairs(extra_headers));
        headers.extend(pairs(&[("X-Amz-Date", "20150830T123600Z")]));
        signer.sign(&Request {
            method,
            path,
            query: &pairs(query),
            headers: &headers,
            payload_sha256: &sha256_hex(body.as_bytes()),
        })
    }

    fn suite_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn formats_the_request_time_in_basic_iso_8601() {
        assert_eq!(AmzDate::new(at(SUITE_TIME)).as_str(), "20150830T123600Z");
        assert_eq!(AmzDate::new(at(S3_DOC_TIME)).as_str(), "20130524T000000Z");
        assert_eq!(AmzDate::new(at(0)).as_str(), "19700101T000000Z");
        // 2024-02-29T23:59:59Z: a leap day, and the last second before midnight.
        assert_eq!(AmzDate::new(at(1_709_251_199)).as_str(), "20240229T235959Z");
        // 2100-03-01T00:00:00Z: 2100 is not a leap year.
        assert_eq!(AmzDate::new(at(4_107_542_400)).as_str(), "21000301T000000Z");
    }

    #[test]
    fn signs_get_vanilla_as_the_test_suite_does() {
        let signed = suite("GET", "/", &[], &[], "");
        assert_eq!(
            signed.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            signed.authorization,
            suite_authorization(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    /// Cases from the AWS SigV4 test suite: (name, method, path, query, extra headers, body,
    /// signed headers, expected signature from the case's `.authz` file).
    #[test]
    fn signs_the_test_suite_requests() {
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &str,
            &str,
            &[(&str, &str)],
            &[(&str, &str)],
            &str,
            &str,
            &str,
        )] = &[
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "/",
                &[("Param2", "value2"), ("Param1", "value1")],
                &[],
                "",
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "get-vanilla-query-order-key",
                "GET",
                "/",
                &[("Param1", "value2"), ("Param1", "Value1")],
                &[],
                "",
                "host;x-amz-date",
                "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
            ),
            (
                "get-vanilla-query-order-value",
                "GET",
                "/",
                &[("Param1", "value2"), ("Param1", "value1")],
                &[],
                "",
                "host;x-amz-date",
                "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
            ),
            (
                "get-vanilla-query-unreserved",
                "GET",
                "/",
                &[(
                    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                )],
                &[],
                "",
                "host;x-amz-date",
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            ),
            (
                "get-vanilla-utf8-query",
                "GET",
                "/",
                &[("\u{1234}", "bar")],
                &[],
                "",
                "host;x-amz-date",
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            ),
            (
                "get-unreserved",
                "GET",
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                &[],
                &[],
                "",
                "host;x-amz-date",
                "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            ),
            (
                "get-header-key-duplicate",
                "GET",
                "/",
                &[],
                &[
                    ("My-Header1", "value2"),
                    ("My-Header1", "value2"),
                    ("My-Header1", "value1"),
                ],
                "",
                "host;my-header1;x-amz-date",
                "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            ),
            (
                "get-header-value-order",
                "GET",
                "/",
                &[],
                &[
                    ("My-Header1", "value4"),
                    ("My-Header1", "value1"),
                    ("My-Header1", "value3"),
                    ("My-Header1", "value2"),
                ],
                "",
                "host;my-header1;x-amz-date",
                "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            ),
            (
                "get-header-value-trim",
                "GET",
                "/",
                &[],
                &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
                "",
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            ),
            (
                "post-vanilla",
                "POST",
                "/",
                &[],
                &[],
                "",
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "post-vanilla-query",
                "POST",
                "/",
                &[("Param1", "value1")],
                &[],
                "",
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            ),
            (
                "post-header-value-case",
                "POST",
                "/",
                &[],
                &[("My-Header1", "VALUE1")],
                "",
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            ),
            // The suite's .creq for this case lists content-length, but the hash in its .sts and
            // the signature in its .authz are over content-type, host and x-amz-date only: the
            // files disagree, and the signature is what a server checks.
            (
                "post-x-www-form-urlencoded",
                "POST",
                "/",
                &[],
                &[("Content-Type", "application/x-www-form-urlencoded")],
                "Param1=value1",
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
        ];
        for (name, method, path, query, headers, body, signed_headers, signature) in cases {
            let signed = suite(method, &encode_path(path), query, headers, body);
            assert_eq!(
                signed.authorization,
                suite_authorization(signed_headers, signature),
                "{name}:\n{}",
                signed.canonical_request
            );
        }
    }

    #[test]
    fn hashes_a_form_body_into_the_string_to_sign_as_the_test_suite_does() {
        let signed = suite(
            "POST",
            "/",
            &[],
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "Param1=value1",
        );
        assert!(
            signed
                .canonical_request
                .ends_with("\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        );
        // post-x-www-form-urlencoded.sts
        assert_eq!(
            signed.string_to_sign.lines().last(),
            Some("42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281")
        );
    }

    #[test]
    fn sorts_and_encodes_the_query_of_the_utf8_case() {
        let signed = suite("GET", "/", &[("\u{1234}", "bar")], &[], "");
        assert!(
            signed
                .canonical_request
                .starts_with("GET\n/\n%E1%88%B4=bar\n"),
            "{}",
            signed.canonical_request
        );
    }

    /// The S3 documentation's examples: `examplebucket`, `AKIAIOSFODNN7EXAMPLE`, 2013-05-24.
    fn s3_doc(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: &str,
    ) -> Signature {
        let signer = Signer {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "s3",
            date: AmzDate::new(at(S3_DOC_TIME)),
        };
        let mut all = pairs(&[("Host", "examplebucket.s3.amazonaws.com")]);
        all.extend(pairs(headers));
        all.extend(pairs(&[
            ("x-amz-content-sha256", payload),
            ("x-amz-date", "20130524T000000Z"),
        ]));
        signer.sign(&Request {
            method,
            path: &encode_path(path),
            query: &pairs(query),
            headers: &all,
            payload_sha256: payload,
        })
    }

    fn s3_doc_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn signs_the_s3_documentation_get_object_with_a_range() {
        let signed = s3_doc(
            "GET",
            "/test.txt",
            &[],
            &[("Range", "bytes=0-9")],
            EMPTY_SHA256,
        );
        assert_eq!(
            signed.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signed.authorization,
            s3_doc_authorization(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            )
        );
    }

    #[test]
    fn signs_the_s3_documentation_put_object_whose_key_needs_escaping() {
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let signed = s3_doc(
            "PUT",
            "/test$file.text",
            &[],
            &[
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            &payload,
        );
        assert!(
            signed
                .canonical_request
                .starts_with("PUT\n/test%24file.text\n\n")
        );
        assert_eq!(
            signed.string_to_sign.lines().last(),
            Some("9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d")
        );
        assert_eq!(
            signed.authorization,
            s3_doc_authorization(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            )
        );
    }

    #[test]
    fn signs_the_s3_documentation_sub_resource_as_key_equals_nothing() {
        let signed = s3_doc("GET", "/", &[("lifecycle", "")], &[], EMPTY_SHA256);
        assert!(signed.canonical_request.starts_with("GET\n/\nlifecycle=\n"));
        assert_eq!(
            signed.signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(encode_query(&pairs(&[("lifecycle", "")])), "lifecycle");
    }

    #[test]
    fn signs_the_s3_documentation_list_objects_with_a_sorted_query() {
        let signed = s3_doc(
            "GET",
            "/",
            &[("prefix", "J"), ("max-keys", "2")],
            &[],
            EMPTY_SHA256,
        );
        assert!(
            signed
                .canonical_request
                .starts_with("GET\n/\nmax-keys=2&prefix=J\n")
        );
        assert_eq!(
            signed.string_to_sign.lines().last(),
            Some("df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7")
        );
        assert_eq!(
            signed.signature,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn encodes_everything_but_unreserved_bytes_and_path_slashes() {
        assert_eq!(uri_encode("a b+c/d*~", false), "a%20b%2Bc%2Fd%2A~");
        assert_eq!(
            encode_path("/bucket/dir/a b=é"),
            "/bucket/dir/a%20b%3D%C3%A9"
        );
        assert_eq!(
            encode_query(&pairs(&[("list-type", "2"), ("prefix", "a/b c")])),
            "list-type=2&prefix=a%2Fb%20c"
        );
    }
}
