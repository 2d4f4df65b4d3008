//! What can go wrong talking to an S3 store, sorted by what the controller does about it:
//! retry later (unreachable, other statuses), report a misconfiguration (auth, invalid request,
//! a bucket name taken), or carry on (a bucket not empty, a bucket already gone).

use std::fmt;

use super::transport::TransportError;
use super::xml;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{endpoint:?} is not a usable S3 endpoint: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    /// Refused before sending: a bucket name, rule or setting that S3 would reject anyway.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "could not reach the S3 store at {endpoint} for {operation}: {source}; \
         check the endpoint and that the store is running"
    )]
    Unreachable {
        endpoint: String,
        operation: &'static str,
        #[source]
        source: TransportError,
    },

    /// 403, or a refused signature, key or credential scope: the credentials or the region are
    /// wrong, or the key may not touch this bucket.
    #[error(
        "the S3 store refused the credentials: {0}; check the access key id, the secret, \
         the region and the key's permissions"
    )]
    Auth(Failure),

    #[error("the bucket is not empty: {0}; delete its objects first")]
    BucketNotEmpty(Failure),

    /// The name is taken by someone else (your own bucket is not an error when creating).
    #[error("the bucket name is taken by another owner: {0}; choose another name")]
    BucketAlreadyExists(Failure),

    #[error("no such bucket: {0}")]
    NoSuchBucket(Failure),

    /// 400: the store understood the request and refused it; retrying will not help.
    #[error("the S3 store refused the request as invalid: {0}")]
    InvalidRequest(Failure),

    /// Any other status: 5xx and throttling among them, so worth a retry.
    #[error("the S3 store failed the request: {0}")]
    Status(Failure),

    /// A 2xx whose body was not what the operation returns.
    #[error("the S3 store's answer to {operation} on bucket {bucket:?} is unreadable: {reason}")]
    InvalidResponse {
        operation: &'static str,
        bucket: String,
        reason: String,
    },
}

/// An S3 error answer: the operation, the HTTP status, and S3's `Code` and `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The S3 API name (`CreateBucket`, `PutBucketCors`, ...).
    pub operation: &'static str,
    pub bucket: String,
    pub status: u16,
    /// S3's error code (`BucketNotEmpty`, `AccessDenied`, ...); for a bodiless answer (HEAD),
    /// the code S3 would give for the status.
    pub code: String,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on bucket {:?} answered HTTP {} {}",
            self.operation, self.bucket, self.status, self.code
        )?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

impl Error {
    /// S3's answer, when the store gave one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Auth(f)
            | Error::BucketNotEmpty(f)
            | Error::BucketAlreadyExists(f)
            | Error::NoSuchBucket(f)
            | Error::InvalidRequest(f)
            | Error::Status(f) => Some(f),
            _ => None,
        }
    }

    /// Sorts an error answer by its status and S3 code.
    pub(crate) fn from_answer(
        operation: &'static str,
        bucket: &str,
        status: u16,
        body: &[u8],
    ) -> Error {
        let (code, message) = code_and_message(status, body);
        let failure = Failure {
            operation,
            bucket: bucket.to_owned(),
            status,
            code,
            message,
        };
        match (status, failure.code.as_str()) {
            (403, _)
            | (
                _,
                "AuthorizationHeaderMalformed"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "RequestTimeTooSkewed"
                | "ExpiredToken"
                | "InvalidToken",
            ) => Error::Auth(failure),
            (_, "BucketNotEmpty") => Error::BucketNotEmpty(failure),
            (_, "BucketAlreadyExists") => Error::BucketAlreadyExists(failure),
            (_, "NoSuchBucket") => Error::NoSuchBucket(failure),
            (400, _) => Error::InvalidRequest(failure),
            _ => Error::Status(failure),
        }
    }
}

/// S3's `<Error><Code/><Message/></Error>`; a HEAD answer has no body, and a proxy in front of
/// the store may answer with HTML, so fall back on the status and the start of the body.
fn code_and_message(status: u16, body: &[u8]) -> (String, String) {
    if let Ok(root) = xml::parse(body)
        && root.name == "Error"
    {
        let code = root.child_text("Code").unwrap_or_default().to_owned();
        let message = root.child_text("Message").unwrap_or_default().to_owned();
        if !code.is_empty() {
            return (code, message);
        }
    }
    let code = match status {
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => "NotFound",
        409 => "Conflict",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "",
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    };
    (code.to_owned(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str, message: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message><Resource>/b</Resource></Error>")
            .into_bytes()
    }

    fn kind(error: &Error) -> &'static str {
        match error {
            Error::Auth(_) => "Auth",
            Error::BucketNotEmpty(_) => "BucketNotEmpty",
            Error::BucketAlreadyExists(_) => "BucketAlreadyExists",
            Error::NoSuchBucket(_) => "NoSuchBucket",
            Error::InvalidRequest(_) => "InvalidRequest",
            Error::Status(_) => "Status",
            _ => "other",
        }
    }

    #[test]
    fn sorts_answers_by_status_and_code() {
        let cases = [
            (403, "AccessDenied", "Auth"),
            (403, "SignatureDoesNotMatch", "Auth"),
            (400, "AuthorizationHeaderMalformed", "Auth"),
            (409, "BucketNotEmpty", "BucketNotEmpty"),
            (409, "BucketAlreadyExists", "BucketAlreadyExists"),
            (404, "NoSuchBucket", "NoSuchBucket"),
            (400, "MalformedXML", "InvalidRequest"),
            (503, "SlowDown", "Status"),
        ];
        for (status, code, expected) in cases {
            let error = Error::from_answer("Op", "b", status, &answer(code, "why"));
            assert_eq!(kind(&error), expected, "{status} {code}");
            let failure = error.failure().unwrap();
            assert_eq!(
                (failure.code.as_str(), failure.message.as_str()),
                (code, "why")
            );
        }
    }

    #[test]
    fn names_a_bodiless_answer_by_its_status() {
        let error = Error::from_answer("HeadBucket", "b", 403, b"");
        assert!(matches!(&error, Error::Auth(f) if f.code == "AccessDenied"));
        let error = Error::from_answer("HeadBucket", "b", 404, b"");
        assert!(matches!(&error, Error::Status(f) if f.code == "NotFound"));
    }

    #[test]
    fn keeps_the_start_of_a_body_that_is_not_s3_xml() {
        let html = format!("<html>{}</html>", "x".repeat(500));
        let error = Error::from_answer("CreateBucket", "b", 502, html.as_bytes());
        let failure = error.failure().unwrap();
        assert_eq!(failure.code, "");
        assert!(failure.message.starts_with("<html>xx"));
        assert!(failure.message.ends_with("..."));
        assert!(failure.message.len() < 210);
    }

    #[test]
    fn says_what_failed_and_what_to_do() {
        let error = Error::from_answer(
            "DeleteBucket",
            "photos",
            409,
            &answer(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            ),
        );
        assert_eq!(
            error.to_string(),
            "the bucket is not empty: DeleteBucket on bucket \"photos\" answered HTTP 409 \
             BucketNotEmpty (The bucket you tried to delete is not empty); delete its objects first"
        );
    }
}
