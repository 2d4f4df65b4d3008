//! Where an object lives in the store: `{group}/{resource}/{namespace}/{name}`, with an empty
//! group for the core API and an empty namespace for cluster-scoped kinds. Names and namespaces
//! are DNS labels or subdomains, so `/` never occurs inside a part, and key order groups a
//! resource's objects by namespace: listing is a prefix scan.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    key: String,
}

impl ObjectKey {
    pub fn new(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            key: format!("{group}/{resource}/{}/{name}", namespace.unwrap_or("")),
        }
    }

    /// Rebuilds a key from its text, as stored in the owner index and events.
    pub(crate) fn from_string(key: String) -> Self {
        Self { key }
    }

    /// The prefix of every key of `resource` (in `namespace`, when given).
    pub fn prefix(group: &str, resource: &str, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{group}/{resource}/{ns}/"),
            None => format!("{group}/{resource}/"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    fn parts(&self) -> Vec<&str> {
        self.key.splitn(4, '/').collect()
    }

    pub fn group(&self) -> &str {
        self.parts()[0]
    }

    pub fn resource(&self) -> &str {
        self.parts()[1]
    }

    pub fn namespace(&self) -> Option<&str> {
        Some(self.parts()[2]).filter(|n| !n.is_empty())
    }

    pub fn name(&self) -> &str {
        self.parts()[3]
    }

    /// `resource.group "name"` (with the namespace), as Kubernetes names objects in messages.
    pub fn describe(&self) -> String {
        let resource = if self.group().is_empty() {
            self.resource().to_owned()
        } else {
            format!("{}.{}", self.resource(), self.group())
        };
        format!("{resource} {:?}", self.name())
    }
}
