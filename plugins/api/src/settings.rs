//! The controller's settings, the same for its reconciler and its admission bindings: when to
//! look again, the identity Realm Applications use by default, and which group is the team of a
//! namespace.

use std::collections::BTreeMap;

use corbel_sdk::controller::Timing;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Look at every object again after this long. Subscriptions read their Application in
    /// another namespace, which no watch connects them to: this is how soon they notice it
    /// changed or went.
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
    /// How soon an object waiting on another one is looked at again.
    #[serde(default = "default_blocked_retry")]
    pub blocked_retry_seconds: u64,
    /// The identity Realm (in the Application's namespace) of Applications that name none.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// The group whose members are the team of a namespace; a namespace not listed belongs to
    /// the group of its own name.
    #[serde(default)]
    pub teams: BTreeMap<String, String>,
}

fn default_resync() -> u64 {
    Timing::default().resync_seconds
}

fn default_blocked_retry() -> u64 {
    Timing::default().blocked_retry_seconds
}

fn default_realm() -> String {
    "default".into()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_seconds: default_resync(),
            blocked_retry_seconds: default_blocked_retry(),
            realm: default_realm(),
            teams: BTreeMap::new(),
        }
    }
}

impl Settings {
    pub fn timing(&self) -> Timing {
        Timing {
            resync_seconds: self.resync_seconds,
            blocked_retry_seconds: self.blocked_retry_seconds,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.timing().check()?;
        if self.realm.is_empty() {
            return Err("realm must name a Realm".into());
        }
        if let Some((namespace, _)) = self.teams.iter().find(|(_, g)| g.is_empty()) {
            return Err(format!("teams.{namespace} is empty: name the team's group"));
        }
        Ok(())
    }

    /// The group whose members are the team owning `namespace`.
    pub fn team_of<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.teams
            .get(namespace)
            .map(String::as_str)
            .unwrap_or(namespace)
    }
}
