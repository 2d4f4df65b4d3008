//! A hostile policy for the host's tests. It uses the raw WIT bindings, not the SDK, so that it can
//! return what no well-behaved plugin would. Its settings name the attack, carried out by both
//! `validate` and `mutate`:
//!
//! | `{"attack": …}` | behaviour |
//! | --- | --- |
//! | `none` | admits, so the same component can serve good traffic |
//! | `infinite-loop` | spins forever |
//! | `memory-bomb` | allocates 1 MiB at a time until the host refuses to grow its memory |
//! | `trap` | hits `unreachable` |
//! | `oversized-output` | answers with a 32 MiB denial message |
//! | `garbage-output` | answers with a status code that is not HTTP and a mutated object that is not JSON |
//! | `bad-settings` | refuses its settings in `validate-settings` |
//! | `chatty` | records a failed check, then logs 200 records and prints 50 lines to stdout, and denies |

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "policy" });

use exports::corbel::plugin::admission::{AdmissionRequest, AdmissionResponse, Guest};

struct Hostile;

fn attack(settings: &str) -> Result<AdmissionResponse, String> {
    let allow = AdmissionResponse {
        allowed: true,
        message: None,
        code: None,
        warnings: vec![],
        mutated_object: None,
    };
    let name = settings.split('"').nth(3).unwrap_or("none");
    match name {
        "none" => Ok(allow),
        "infinite-loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
            }
        }
        "trap" => {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
            #[cfg(not(target_arch = "wasm32"))]
            panic!("trap");
        }
        "oversized-output" => Ok(AdmissionResponse {
            allowed: false,
            message: Some("x".repeat(32 << 20)),
            ..allow
        }),
        "garbage-output" => Ok(AdmissionResponse {
            allowed: false,
            code: Some(7),
            message: Some("\u{0}garbage".into()),
            mutated_object: Some("{not json".into()),
            ..allow
        }),
        "chatty" => {
            use corbel::plugin::log::{Level, log};
            use corbel::plugin::types::Field;
            let check = Field {
                key: "early".into(),
                value: "fail: the check that matters".into(),
            };
            log(Level::Debug, "corbel.check", &[check]);
            for i in 0..200 {
                log(Level::Info, &format!("log line {i}"), &[]);
            }
            for i in 0..50 {
                println!("stdout line {i}");
            }
            Ok(AdmissionResponse {
                allowed: false,
                message: Some("chatty says no".into()),
                ..allow
            })
        }
        other => Err(format!("unknown attack {other:?}")),
    }
}

impl Guest for Hostile {
    fn validate_settings(settings: String) -> Result<(), String> {
        if settings.contains("bad-settings") {
            return Err("these settings are refused on purpose".into());
        }
        Ok(())
    }

    fn validate(_request: AdmissionRequest, settings: String) -> Result<AdmissionResponse, String> {
        attack(&settings)
    }

    fn mutate(_request: AdmissionRequest, settings: String) -> Result<AdmissionResponse, String> {
        attack(&settings)
    }
}

export!(Hostile);
