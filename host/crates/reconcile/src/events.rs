//! Events about reconciled objects (`events.k8s.io/v1`), deduplicated as client-go's event
//! recorder does it: the same event (object, type, reason, action *and note*) published again
//! within the cache's time adds to its series; a different note is a new Event.
//!
//! Hand-rolled rather than kube-runtime's `Recorder`, whose cache key leaves the note out and
//! whose repeat patches the cached (first) note back: a Bucket whose rules went from 1 to 2 and
//! back read "1 lifecycle rule(s) now" three times, the second note never shown.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long a published event is remembered for its series (kube-runtime's and client-go's).
const CACHE_TTL: Duration = Duration::from_secs(6 * 60);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>),
    type_: &'static str,
    reason: String,
    action: String,
    note: String,
}

pub(crate) struct Recorder {
    client: kube::Client,
    controller: String,
    instance: String,
    /// By key: the Event's name, when it was last published, and how many times.
    cache: tokio::sync::Mutex<HashMap<Key, (String, jiff::Timestamp, i32)>>,
}

impl Recorder {
    pub(crate) fn new(client: kube::Client, controller: String, instance: String) -> Recorder {
        Recorder {
            client,
            controller,
            instance,
            cache: Default::default(),
        }
    }

    /// Publishes one event about `regarding`: a new Event, or the next of its series.
    pub(crate) async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = Key {
            regarding: (
                regarding.uid.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
            ),
            type_: if warning { "Warning" } else { "Normal" },
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.to_owned(),
        };
        let seen = {
            let mut cache = self.cache.lock().await;
            let ttl = jiff::SignedDuration::try_from(CACHE_TTL).expect("a small duration");
            cache.retain(|_, (_, last, _)| *last + ttl > now);
            cache.get(&key).cloned()
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if let Some((name, _, count)) = seen {
            let series = EventSeries {
                count: count + 1,
                last_observed_time: MicroTime(now),
            };
            match events
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"series": series})),
                )
                .await
            {
                Ok(_) => {
                    self.cache.lock().await.insert(key, (name, now, count + 1));
                    return Ok(());
                }
                // Gone (expired on the server): publish it anew.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            type_: Some(key.type_.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.cache.lock().await.insert(key, (name, now, 1));
        Ok(())
    }
}
