//! Proto-JSON → protobuf `Any`, with the Envoy API's descriptors (`prost-reflect`).
//!
//! Plugins publish resources as proto-JSON (each with its `@type`), which they can write with
//! `serde_json` alone and operators can read in the snapshot object; the conversion to the bytes
//! Envoy receives happens once, here, when a snapshot is published. A resource the descriptors
//! reject (an unknown field, a wrong type) is an error naming the resource, before Envoy sees it.
//! Nested `Any`s (`typed_config`) are converted through the same pool.

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};
use serde_json::Value;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy-descriptors.bin"));

const TYPE_PREFIX: &str = "type.googleapis.com/";

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the Envoy descriptors do not load: {0}")]
    Descriptors(#[source] prost_reflect::DescriptorError),
    #[error("resource {name:?} has no \"@type\"")]
    MissingType { name: String },
    #[error("resource {name:?}: {type_url} is not an Envoy API type")]
    UnknownType { name: String, type_url: String },
    #[error("resource {name:?} ({type_url}) is not valid proto-JSON: {source}")]
    Invalid {
        name: String,
        type_url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Converts resources; built once (loading the descriptors takes a few milliseconds).
#[derive(Clone)]
pub struct Converter {
    pool: DescriptorPool,
}

impl Converter {
    pub fn new() -> Result<Converter, ConvertError> {
        Ok(Converter {
            pool: DescriptorPool::decode(DESCRIPTORS).map_err(ConvertError::Descriptors)?,
        })
    }

    /// One resource (proto-JSON with `@type`) as an `Any`.
    pub fn to_any(&self, name: &str, resource: &Value) -> Result<Any, ConvertError> {
        let type_url = resource["@type"]
            .as_str()
            .ok_or_else(|| ConvertError::MissingType { name: name.into() })?;
        let message = self
            .pool
            .get_message_by_name(type_url.strip_prefix(TYPE_PREFIX).unwrap_or(type_url))
            .ok_or_else(|| ConvertError::UnknownType {
                name: name.into(),
                type_url: type_url.into(),
            })?;
        let mut body = resource.clone();
        if let Some(object) = body.as_object_mut() {
            object.remove("@type");
        }
        // Unknown fields are errors: Envoy would silently ignore them, and a misspelt field is
        // then a policy that is not enforced.
        let options = DeserializeOptions::new().deny_unknown_fields(true);
        let dynamic = DynamicMessage::deserialize_with_options(message, body, &options).map_err(
            |source| ConvertError::Invalid {
                name: name.into(),
                type_url: type_url.into(),
                source,
            },
        )?;
        Ok(Any {
            type_url: type_url.into(),
            value: dynamic.encode_to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use serde_json::json;

    use super::*;

    #[test]
    fn converts_a_cluster_with_snake_case_fields_and_nested_any() {
        let converter = Converter::new().unwrap();
        let any = converter
            .to_any(
                "c",
                &json!({
                    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                    "name": "orders",
                    "connect_timeout": "2s",
                    "type": "STATIC",
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": "orders.example"}},
                }),
            )
            .unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        let cluster = Cluster::decode(any.value.as_slice()).unwrap();
        assert_eq!(cluster.name, "orders");
        assert_eq!(cluster.connect_timeout.unwrap().seconds, 2);
        let tls = cluster.transport_socket.unwrap();
        assert!(tls.config_type.is_some());
    }

    #[test]
    fn refuses_unknown_fields_and_types_with_the_resource_name() {
        let converter = Converter::new().unwrap();
        let error = converter
            .to_any("orders", &json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "nmae": "x"}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"orders\"") && error.contains("nmae"),
            "{error}"
        );
        let error = converter
            .to_any(
                "orders",
                &json!({"@type": "type.googleapis.com/envoy.Nope"}),
            )
            .unwrap_err();
        assert!(matches!(error, ConvertError::UnknownType { .. }));
    }
}
