//! The storage plugin's S3 client against a real Garage (crates.io `garage` 2.5.0, one node per
//! test on loopback, started by `corbel_e2e::garage`): buckets, lifecycle and CORS as a real store
//! answers them, and the errors a controller must tell apart. Needs the `garage` binary, which
//! `cargo xtask test` installs.

use std::net::{Ipv4Addr, TcpListener};
use std::time::SystemTime;

use corbel_e2e::garage::{Garage, UreqTransport};
use storage::s3::{Client, CorsRule, Credentials, Error, LifecycleRule};

fn client(garage: &Garage) -> Client {
    Client::new(
        &garage.endpoint(),
        &garage.region,
        Credentials {
            access_key_id: garage.access_key_id.clone(),
            secret_access_key: garage.secret_access_key.clone(),
        },
    )
    .unwrap()
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn expire(id: &str, prefix: Option<&str>, days: u32) -> LifecycleRule {
    LifecycleRule {
        id: id.into(),
        prefix: prefix.map(Into::into),
        expiration_days: days,
    }
}

#[test]
fn creates_a_bucket_twice_and_finds_it_empty() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());

    assert!(!s3.head_bucket(&http, now(), "photos").unwrap());
    s3.create_bucket(&http, now(), "photos").unwrap();
    s3.create_bucket(&http, now(), "photos")
        .expect("creating a bucket the key already owns is success");
    assert!(s3.head_bucket(&http, now(), "photos").unwrap());
    assert!(s3.is_empty(&http, now(), "photos").unwrap());
}

#[test]
fn puts_replaces_and_deletes_a_lifecycle_configuration() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    s3.create_bucket(&http, now(), "logs").unwrap();
    assert_eq!(s3.get_lifecycle(&http, now(), "logs").unwrap(), []);

    let rules = [
        expire("tmp", Some("tmp/<&>"), 1),
        expire("everything", None, 365),
    ];
    s3.put_lifecycle(&http, now(), "logs", &rules).unwrap();
    assert_eq!(s3.get_lifecycle(&http, now(), "logs").unwrap(), rules);

    let replacement = [expire("audit", Some("audit/"), 30)];
    s3.put_lifecycle(&http, now(), "logs", &replacement)
        .unwrap();
    assert_eq!(s3.get_lifecycle(&http, now(), "logs").unwrap(), replacement);

    s3.delete_lifecycle(&http, now(), "logs").unwrap();
    assert_eq!(s3.get_lifecycle(&http, now(), "logs").unwrap(), []);
    s3.delete_lifecycle(&http, now(), "logs")
        .expect("deleting an absent lifecycle configuration is success");
}

#[test]
fn puts_replaces_and_deletes_a_cors_configuration() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    s3.create_bucket(&http, now(), "assets").unwrap();
    assert_eq!(s3.get_cors(&http, now(), "assets").unwrap(), []);

    let rules = [
        CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://app.example".into(), "https://admin.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into(), "HEAD".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into(), "x-amz-request-id".into()],
            max_age_seconds: Some(600),
        },
        CorsRule {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["GET".into()],
            ..CorsRule::default()
        },
    ];
    s3.put_cors(&http, now(), "assets", &rules).unwrap();
    assert_eq!(s3.get_cors(&http, now(), "assets").unwrap(), rules);

    let replacement = [rules[1].clone()];
    s3.put_cors(&http, now(), "assets", &replacement).unwrap();
    assert_eq!(s3.get_cors(&http, now(), "assets").unwrap(), replacement);

    s3.delete_cors(&http, now(), "assets").unwrap();
    assert_eq!(s3.get_cors(&http, now(), "assets").unwrap(), []);
}

#[test]
fn deletes_an_empty_bucket_and_then_finds_no_such_bucket() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    s3.create_bucket(&http, now(), "scratch").unwrap();

    s3.delete_bucket(&http, now(), "scratch").unwrap();
    assert!(!s3.head_bucket(&http, now(), "scratch").unwrap());
    let error = s3.delete_bucket(&http, now(), "scratch").unwrap_err();
    assert!(
        matches!(&error, Error::NoSuchBucket(f) if f.status == 404),
        "{error}"
    );
    let error = s3
        .put_lifecycle(&http, now(), "scratch", &[expire("x", None, 1)])
        .unwrap_err();
    assert!(matches!(error, Error::NoSuchBucket(_)), "{error}");
}

#[test]
fn refuses_to_delete_a_bucket_with_an_object_in_it() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    s3.create_bucket(&http, now(), "archive").unwrap();
    s3.put_object(&http, now(), "archive", "2024/report one.txt", b"kept")
        .unwrap();
    assert!(!s3.is_empty(&http, now(), "archive").unwrap());

    let error = s3.delete_bucket(&http, now(), "archive").unwrap_err();
    let Error::BucketNotEmpty(failure) = &error else {
        panic!("expected BucketNotEmpty, got {error:?}");
    };
    assert_eq!(
        (failure.status, failure.code.as_str()),
        (409, "BucketNotEmpty")
    );
    assert!(!failure.message.is_empty(), "{failure:?}");
    assert!(s3.head_bucket(&http, now(), "archive").unwrap());
}

#[test]
fn reports_a_store_that_is_down_as_unreachable_and_recovers_when_it_is_back() {
    let mut garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    s3.create_bucket(&http, now(), "durable").unwrap();

    garage.stop();
    let error = s3.head_bucket(&http, now(), "durable").unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Unreachable {
                operation: "HeadBucket",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(&garage.endpoint()), "{error}");

    garage.start_again();
    assert!(s3.head_bucket(&http, now(), "durable").unwrap());
}

#[test]
fn reports_a_closed_port_as_unreachable() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s3 = Client::new(
        &format!("http://127.0.0.1:{port}"),
        "garage",
        Credentials {
            access_key_id: "GK00".into(),
            secret_access_key: "secret".into(),
        },
    )
    .unwrap();
    let error = s3
        .create_bucket(&UreqTransport::pooled(), now(), "photos")
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Unreachable {
                operation: "CreateBucket",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn reports_a_wrong_secret_or_an_unknown_key_as_an_auth_error() {
    let garage = Garage::start();
    let http = UreqTransport::pooled();
    let with = |access_key_id: &str, secret_access_key: &str| {
        Client::new(
            &garage.endpoint(),
            &garage.region,
            Credentials {
                access_key_id: access_key_id.into(),
                secret_access_key: secret_access_key.into(),
            },
        )
        .unwrap()
    };

    let wrong_secret = with(&garage.access_key_id, "0".repeat(64).as_str());
    let error = wrong_secret
        .create_bucket(&http, now(), "photos")
        .unwrap_err();
    let Error::Auth(failure) = &error else {
        panic!("expected an auth error, got {error:?}");
    };
    assert_eq!(
        (failure.status, failure.code.as_str()),
        (403, "AccessDenied")
    );
    assert!(failure.message.contains("signature"), "{failure:?}");
    // HEAD answers have no body: the code comes from the status.
    let error = wrong_secret
        .head_bucket(&http, now(), "photos")
        .unwrap_err();
    assert!(
        matches!(&error, Error::Auth(f) if f.status == 403),
        "{error:?}"
    );

    let unknown = with("GK000000000000000000000000", &garage.secret_access_key);
    let error = unknown.create_bucket(&http, now(), "photos").unwrap_err();
    assert!(
        matches!(&error, Error::Auth(f) if f.message.contains("No such key")),
        "{error:?}"
    );
}

#[test]
fn reports_a_region_other_than_the_stores_as_an_auth_error() {
    let garage = Garage::start();
    let s3 = Client::new(
        &garage.endpoint(),
        "us-east-1",
        Credentials {
            access_key_id: garage.access_key_id.clone(),
            secret_access_key: garage.secret_access_key.clone(),
        },
    )
    .unwrap();
    let error = s3
        .create_bucket(&UreqTransport::pooled(), now(), "photos")
        .unwrap_err();
    let Error::Auth(failure) = &error else {
        panic!("expected an auth error, got {error:?}");
    };
    assert_eq!(
        (failure.status, failure.code.as_str()),
        (400, "AuthorizationHeaderMalformed")
    );
}

#[test]
fn reports_a_bucket_name_the_store_refuses_as_an_invalid_request() {
    let garage = Garage::start();
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    // Valid by S3's rules as this client checks them, refused by Garage (punycode is off).
    let error = s3.create_bucket(&http, now(), "xn--photos").unwrap_err();
    let Error::InvalidRequest(failure) = &error else {
        panic!("expected an invalid request, got {error:?}");
    };
    assert_eq!(
        (failure.status, failure.code.as_str()),
        (400, "InvalidRequest")
    );
    assert!(failure.message.contains("xn--photos"), "{failure:?}");
}

#[test]
fn reports_a_name_held_by_another_owner_as_already_existing() {
    let garage = Garage::start();
    // A bucket with a global alias that the test key has no permission on.
    garage.cli(&["bucket", "create", "shared"]);
    let (s3, http) = (client(&garage), UreqTransport::pooled());
    let error = s3.create_bucket(&http, now(), "shared").unwrap_err();
    assert!(
        matches!(&error, Error::BucketAlreadyExists(f) if f.status == 409),
        "{error:?}"
    );
}
