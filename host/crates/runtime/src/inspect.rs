//! What a component is: its `corbel:plugin` version, world, imports and exports, read from the
//! component's own type information (no WIT files needed).

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

use super::LoadError;
use super::bindings;

const ADMISSION: &str = "corbel:plugin/admission@";
const RECONCILER: &str = "corbel:plugin/reconciler@";

/// Whether a component exports the controller's `reconciler` interface.
pub fn is_controller(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(RECONCILER))
}

/// A component, described for `corbel inspect`.
#[derive(Debug, Serialize)]
pub struct Description {
    /// `corbel:plugin@X.Y.Z`, when the component exports a Corbel interface.
    pub package: Option<String>,
    /// The Corbel world it fits, such as `corbel:plugin/policy@0.1.0`.
    pub world: Option<String>,
    /// Whether this host can load it, and if not, why.
    pub loadable: Result<(), String>,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
}

#[derive(Debug, Serialize)]
pub struct Item {
    pub name: String,
    /// Functions of an interface, or the item's kind.
    pub functions: Vec<String>,
}

fn items<'a>(
    engine: &Engine,
    list: impl Iterator<Item = (&'a str, ComponentExtern<'a>)>,
) -> Vec<Item> {
    let mut items: Vec<Item> = list
        .map(|(name, item)| {
            let functions = match item.ty {
                ComponentItem::ComponentInstance(instance) => instance
                    .exports(engine)
                    .map(|(n, _)| n.to_owned())
                    .collect(),
                ComponentItem::ComponentFunc(_) => vec!["func".into()],
                other => vec![
                    format!("{other:?}")
                        .split('(')
                        .next()
                        .unwrap_or("item")
                        .to_lowercase(),
                ],
            };
            Item {
                name: name.to_owned(),
                functions,
            }
        })
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    items
}

/// The `corbel:plugin` version of a policy component, from the name of its admission export.
pub fn policy_version(engine: &Engine, component: &Component) -> Result<String, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    match exports.iter().find_map(|name| name.strip_prefix(ADMISSION)) {
        Some(version) => Ok(version.to_owned()),
        None => Err(LoadError::NotAPolicy {
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
            supported: bindings::SUPPORTED[0].to_owned(),
        }),
    }
}

pub fn describe(engine: &Engine, component: &Component) -> Description {
    let ty = component.component_type();
    let version = policy_version(engine, component);
    let loadable = match &version {
        Ok(v) if bindings::SUPPORTED.contains(&v.as_str()) => Ok(()),
        Ok(v) => Err(LoadError::UnsupportedWitVersion {
            found: v.clone(),
            supported: bindings::SUPPORTED.join(", "),
        }
        .to_string()),
        Err(e) => Err(e.to_string()),
    };
    let version = version.ok();
    Description {
        package: version.as_ref().map(|v| format!("corbel:plugin@{v}")),
        world: version.as_ref().map(|v| {
            let world = if is_controller(engine, component) {
                "controller"
            } else {
                "policy"
            };
            format!("corbel:plugin/{world}@{v}")
        }),
        loadable,
        imports: items(engine, ty.imports(engine)),
        exports: items(engine, ty.exports(engine)),
    }
}
