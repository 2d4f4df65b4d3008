//! Verdicts and messages compared with what Kubernetes' Pod Security Admission reports.

use corbel_sdk::{Operation, Policy, Request, Verdict};
use serde_json::{Value, json};

use super::*;
use crate::checks::go_quote;

fn settings(level: &str) -> Settings {
    Settings {
        level: level.into(),
        version: String::new(),
    }
}

/// Settings of `level` at policy `version`; `level` may be written `level:version`.
fn settings_at(level_version: &str) -> Settings {
    let (level, version) = level_version.split_once(':').unwrap_or((level_version, ""));
    Settings {
        level: level.into(),
        version: version.into(),
    }
}

/// The verdict at `level`, written `baseline` or `baseline:v1.29`.
fn review(level: &str, request: &Request) -> Verdict {
    PodSecurity::validate(request, &settings_at(level)).expect("the request can be evaluated")
}

fn create(kind: &str, object: Value) -> Request {
    Request::builder(Operation::Create, kind)
        .object(object)
        .build()
}

/// The denial message for creating `object` of `kind` at `level`, `None` when admitted.
fn denial(level: &str, kind: &str, object: Value) -> Option<String> {
    let verdict = review(level, &create(kind, object));
    match verdict.is_allowed() {
        true => None,
        false => Some(
            verdict
                .message()
                .expect("a denial has a message")
                .to_owned(),
        ),
    }
}

/// JSON merge patch (RFC 7386): objects merge, `null` removes, anything else replaces.
fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(base: &mut Value, patch: Value) {
        match (base.as_object_mut(), patch) {
            (Some(object), Value::Object(patch)) => {
                for (key, value) in patch {
                    if value.is_null() {
                        object.remove(&key);
                    } else {
                        merge(object.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
            (_, patch) => *base = patch,
        }
    }
    merge(&mut base, patch);
    base
}

fn pod_with(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": merged(json!({"name": "web"}), metadata), "spec": spec})
}

fn pod(spec: Value) -> Value {
    pod_with(json!({}), spec)
}

/// Container "app" with `extra` merged in.
fn app(extra: Value) -> Value {
    merged(json!({"name": "app", "image": "nginx:1.27"}), extra)
}

/// Container `name` that passes restricted, with `security_context` merged into its own.
fn restricted_container(name: &str, security_context: Value) -> Value {
    json!({
        "name": name,
        "image": "nginx:1.27",
        "securityContext": merged(
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
            security_context,
        ),
    })
}

/// A pod spec that passes restricted, with `patch` merged in.
fn restricted_spec(patch: Value) -> Value {
    merged(
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [restricted_container("app", json!({}))],
        }),
        patch,
    )
}

struct Case {
    what: &'static str,
    pod: Value,
    /// What follows `violates PodSecurity "<level>:latest": `, `None` when admitted.
    denied: Option<&'static str>,
}

fn denied(what: &'static str, pod: Value, message: &'static str) -> Case {
    Case {
        what,
        pod,
        denied: Some(message),
    }
}

fn admitted(what: &'static str, pod: Value) -> Case {
    Case {
        what,
        pod,
        denied: None,
    }
}

fn assert_cases(level: &str, cases: Vec<Case>) {
    for case in cases {
        let want = case
            .denied
            .map(|m| format!("violates PodSecurity \"{level}:latest\": {m}"));
        assert_eq!(
            denial(level, "Pod", case.pod),
            want,
            "{level}: {}",
            case.what
        );
    }
}

const PLAIN_POD_RESTRICTED: &str = r#"violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#;

#[test]
fn baseline_denies_each_forbidden_setting_with_the_psa_reason_and_detail() {
    assert_cases(
        "baseline",
        vec![
            denied(
                "windows hostProcess on the pod and a container",
                pod(json!({
                    "securityContext": {"windowsOptions": {"hostProcess": true}},
                    "containers": [app(json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}))],
                })),
                r#"hostProcess (pod and container "app" must not set securityContext.windowsOptions.hostProcess=true)"#,
            ),
            denied(
                "every host namespace",
                pod(
                    json!({"hostNetwork": true, "hostPID": true, "hostIPC": true, "containers": [app(json!({}))]}),
                ),
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
            ),
            denied(
                "the host PID namespace alone",
                pod(json!({"hostPID": true, "containers": [app(json!({}))]})),
                "host namespaces (hostPID=true)",
            ),
            denied(
                "privileged init and regular containers",
                pod(json!({
                    "initContainers": [{"name": "init", "image": "busybox", "securityContext": {"privileged": true}}],
                    "containers": [app(json!({"securityContext": {"privileged": true}}))],
                })),
                r#"privileged (containers "init", "app" must not set securityContext.privileged=true)"#,
            ),
            denied(
                "capabilities beyond the default set",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"capabilities": {"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]}}}))]}),
                ),
                r#"non-default capabilities (container "app" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)"#,
            ),
            denied(
                "a hostPath volume",
                pod(json!({
                    "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "scratch", "emptyDir": {}}],
                    "containers": [app(json!({}))],
                })),
                r#"hostPath volumes (volume "host")"#,
            ),
            denied(
                "host ports, listed as PSA sorts them",
                pod(json!({"containers": [app(json!({"ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 443, "hostPort": 10443},
                    {"containerPort": 9090},
                ]}))]})),
                r#"hostPort (container "app" uses hostPorts 10443, 8080)"#,
            ),
            denied(
                "an unconfined AppArmor profile on the pod",
                pod(json!({
                    "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
                    "containers": [app(json!({}))],
                })),
                r#"forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")"#,
            ),
            denied(
                "an unconfined AppArmor profile on a container and in the beta annotation",
                pod_with(
                    json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}),
                    json!({"containers": [app(json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}))]}),
                ),
                r#"forbidden AppArmor profiles (container "app" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined"")"#,
            ),
            denied(
                "a custom SELinux type, user and role",
                pod(json!({
                    "securityContext": {"seLinuxOptions": {"type": "spc_t"}},
                    "containers": [app(json!({"securityContext": {"seLinuxOptions": {"user": "system_u", "role": "system_r"}}}))],
                })),
                r#"seLinuxOptions (pod and container "app" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set)"#,
            ),
            denied(
                "an SELinux user alone",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"seLinuxOptions": {"user": "system_u"}}}))]}),
                ),
                r#"seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: user may not be set)"#,
            ),
            denied(
                "an unmasked /proc",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"procMount": "Unmasked"}}))]}),
                ),
                r#"procMount (container "app" must not set securityContext.procMount to "Unmasked")"#,
            ),
            denied(
                "an unconfined seccomp profile on the pod and a container",
                pod(json!({
                    "securityContext": {"seccompProfile": {"type": "Unconfined"}},
                    "containers": [app(json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}))],
                })),
                r#"seccompProfile (pod and container "app" must not set securityContext.seccompProfile.type to "Unconfined")"#,
            ),
            denied(
                "unsafe sysctls, in the pod's order",
                pod(json!({
                    "securityContext": {"sysctls": [
                        {"name": "kernel.msgmax", "value": "65536"},
                        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                        {"name": "net.core.somaxconn", "value": "1024"},
                    ]},
                    "containers": [app(json!({}))],
                })),
                "forbidden sysctls (kernel.msgmax, net.core.somaxconn)",
            ),
        ],
    );
}

#[test]
fn baseline_admits_the_allowed_values_of_each_check() {
    let safe_sysctls: Vec<Value> = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ]
    .into_iter()
    .map(|name| json!({"name": name, "value": "1"}))
    .collect();
    assert_cases(
        "baseline",
        vec![
            admitted(
                "a pod that sets no security context",
                pod(json!({"containers": [app(json!({}))]})),
            ),
            admitted(
                "hostProcess false",
                pod(json!({
                    "securityContext": {"windowsOptions": {"hostProcess": false}},
                    "containers": [app(json!({"securityContext": {"windowsOptions": {"hostProcess": false}}}))],
                })),
            ),
            admitted(
                "host namespaces set to false",
                pod(
                    json!({"hostNetwork": false, "hostPID": false, "hostIPC": false, "containers": [app(json!({}))]}),
                ),
            ),
            admitted(
                "privileged false",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"privileged": false}}))]}),
                ),
            ),
            admitted(
                "every default capability",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"capabilities": {
                        "add": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"],
                        "drop": ["NET_RAW"],
                    }}}))]}),
                ),
            ),
            admitted(
                "volumes other than hostPath, even those restricted forbids",
                pod(json!({
                    "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "share", "nfs": {"server": "nfs", "path": "/"}}],
                    "containers": [app(json!({}))],
                })),
            ),
            admitted(
                "container ports without a host port, or host port 0",
                pod(
                    json!({"containers": [app(json!({"ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}]}))]}),
                ),
            ),
            admitted(
                "RuntimeDefault and Localhost AppArmor profiles and annotations",
                pod_with(
                    json!({"annotations": {
                        "container.apparmor.security.beta.kubernetes.io/app": "runtime/default",
                        "container.apparmor.security.beta.kubernetes.io/sidecar": "localhost/k8s-sidecar",
                        "container.apparmor.security.beta.kubernetes.io/other": "",
                        "example.com/apparmor": "unconfined",
                    }}),
                    json!({
                        "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            app(json!({"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-app"}}})),
                            {"name": "sidecar", "image": "envoy"},
                        ],
                    }),
                ),
            ),
            admitted(
                "an allowed SELinux type with a level",
                pod(json!({
                    "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}},
                    "containers": [app(json!({"securityContext": {"seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"}}}))],
                })),
            ),
            admitted(
                "the default /proc mount",
                pod(
                    json!({"containers": [app(json!({"securityContext": {"procMount": "Default"}}))]}),
                ),
            ),
            admitted(
                "RuntimeDefault and Localhost seccomp profiles",
                pod(json!({
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [app(json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}))],
                })),
            ),
            admitted(
                "every safe sysctl",
                pod(
                    json!({"securityContext": {"sysctls": safe_sysctls}, "containers": [app(json!({}))]}),
                ),
            ),
            admitted(
                "running as root, which only restricted forbids",
                pod(
                    json!({"securityContext": {"runAsUser": 0}, "containers": [app(json!({"securityContext": {"allowPrivilegeEscalation": true}}))]}),
                ),
            ),
        ],
    );
}

#[test]
fn restricted_admits_a_fully_compliant_pod() {
    assert_eq!(
        denial("restricted", "Pod", pod(restricted_spec(json!({})))),
        None
    );
}

#[test]
fn restricted_denies_a_container_that_may_escalate_privileges() {
    let spec = restricted_spec(json!({"containers": [restricted_container(
        "app",
        json!({"allowPrivilegeEscalation": true})
    )]}));
    assert_eq!(
        denial("restricted", "Pod", pod(spec)).as_deref(),
        Some(
            r#"violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)"#
        )
    );
}

#[test]
fn restricted_denies_each_forbidden_setting_with_the_psa_reason_and_detail() {
    let with_app = |security_context: Value| {
        pod(restricted_spec(
            json!({"containers": [restricted_container("app", security_context)]}),
        ))
    };
    assert_cases(
        "restricted",
        vec![
            denied(
                "volume types outside the allowed list",
                pod(restricted_spec(json!({"volumes": [
                    {"name": "share", "nfs": {"server": "nfs", "path": "/"}},
                    {"name": "host", "hostPath": {"path": "/"}},
                    {"name": "config", "configMap": {"name": "cfg"}},
                ]}))),
                r#"restricted volume types (volumes "share", "host" use restricted volume types "hostPath", "nfs")"#,
            ),
            denied(
                "a hostPath volume, reported once as a restricted volume type",
                pod(restricted_spec(
                    json!({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}),
                )),
                r#"restricted volume types (volume "host" uses restricted volume type "hostPath")"#,
            ),
            denied(
                "allowPrivilegeEscalation left unset",
                with_app(json!({"allowPrivilegeEscalation": null})),
                r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)"#,
            ),
            denied(
                "runAsNonRoot set neither on the pod nor on the container",
                pod(restricted_spec(
                    json!({"securityContext": {"runAsNonRoot": null}}),
                )),
                r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#,
            ),
            denied(
                "runAsNonRoot false on a container although the pod sets true",
                with_app(json!({"runAsNonRoot": false})),
                r#"runAsNonRoot != true (container "app" must not set securityContext.runAsNonRoot=false)"#,
            ),
            denied(
                "runAsNonRoot false on the pod",
                pod(restricted_spec(
                    json!({"securityContext": {"runAsNonRoot": false}}),
                )),
                r#"runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"#,
            ),
            denied(
                "runAsUser 0 on the pod and a container",
                pod(restricted_spec(json!({
                    "securityContext": {"runAsUser": 0},
                    "containers": [restricted_container("app", json!({"runAsUser": 0}))],
                }))),
                r#"runAsUser=0 (pod and container "app" must not set runAsUser=0)"#,
            ),
            denied(
                "no seccomp profile",
                pod(restricted_spec(
                    json!({"securityContext": {"seccompProfile": null}}),
                )),
                r#"seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
            ),
            denied(
                "an unconfined seccomp profile on the pod",
                pod(restricted_spec(
                    json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                )),
                r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#,
            ),
            denied(
                "no capabilities dropped and a forbidden one added",
                with_app(
                    json!({"capabilities": {"drop": ["NET_RAW"], "add": ["SYS_TIME", "NET_BIND_SERVICE"]}}),
                ),
                r#"unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]; container "app" must not include "SYS_TIME" in securityContext.capabilities.add)"#,
            ),
            denied(
                "no capabilities at all",
                with_app(json!({"capabilities": null})),
                r#"unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])"#,
            ),
            denied(
                "a non-default capability, reported once by the restricted check",
                with_app(json!({"capabilities": {"add": ["SYS_ADMIN"]}})),
                r#"unrestricted capabilities (container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#,
            ),
            denied(
                "a baseline violation",
                with_app(json!({"privileged": true})),
                r#"privileged (container "app" must not set securityContext.privileged=true)"#,
            ),
        ],
    );
}

#[test]
fn restricted_admits_the_allowed_values_of_each_check() {
    assert_cases(
        "restricted",
        vec![
            admitted(
                "every allowed volume type",
                pod(restricted_spec(json!({"volumes": [
                    {"name": "a", "configMap": {"name": "cfg"}},
                    {"name": "b", "csi": {"driver": "csi.example.com"}},
                    {"name": "c", "downwardAPI": {"items": []}},
                    {"name": "d", "emptyDir": {}},
                    {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "f", "image": {"reference": "registry.example.com/data:1"}},
                    {"name": "g", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "h", "projected": {"sources": []}},
                    {"name": "i", "secret": {"secretName": "s"}},
                ]}))),
            ),
            admitted(
                "runAsNonRoot and seccomp set on every container instead of the pod",
                pod(restricted_spec(json!({
                    "securityContext": null,
                    "containers": [restricted_container("app", json!({
                        "runAsNonRoot": true,
                        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                    }))],
                }))),
            ),
            admitted(
                "a non-root user id",
                pod(restricted_spec(json!({
                    "securityContext": {"runAsUser": 1000},
                    "containers": [restricted_container("app", json!({"runAsUser": 1001}))],
                }))),
            ),
            admitted(
                "NET_BIND_SERVICE added after dropping ALL",
                pod(restricted_spec(json!({"containers": [restricted_container(
                    "app",
                    json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
                )]}))),
            ),
        ],
    );
}

#[test]
fn restricted_denies_a_plain_pod_with_the_exact_psa_message() {
    assert_eq!(
        denial(
            "restricted",
            "Pod",
            pod(json!({"containers": [app(json!({}))]}))
        )
        .as_deref(),
        Some(PLAIN_POD_RESTRICTED)
    );
}

#[test]
fn baseline_reports_every_violation_in_psa_check_order() {
    let spec = json!({
        "hostNetwork": true,
        "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
        "containers": [app(json!({
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "securityContext": {"privileged": true},
        }))],
    });
    assert_eq!(
        denial("baseline", "Pod", pod(spec)).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPath volumes (volume "host"), hostPort (container "app" uses hostPort 80), privileged (container "app" must not set securityContext.privileged=true)"#
        )
    );
}

#[test]
fn restricted_reports_the_baseline_checks_before_the_restricted_ones() {
    let spec = json!({
        "hostNetwork": true,
        "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
        "containers": [app(json!({
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "securityContext": {"privileged": true},
        }))],
    });
    assert_eq!(
        denial("restricted", "Pod", pod(spec)).as_deref(),
        Some(concat!(
            r#"violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), "#,
            r#"hostPort (container "app" uses hostPort 80), "#,
            r#"privileged (container "app" must not set securityContext.privileged=true), "#,
            r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"restricted volume types (volume "host" uses restricted volume type "hostPath"), "#,
            r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), "#,
            r#"seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        ))
    );
}

#[test]
fn init_and_ephemeral_containers_are_checked_like_regular_ones() {
    let spec = restricted_spec(json!({
        "initContainers": [{"name": "init", "image": "busybox"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
    }));
    assert_eq!(
        denial("restricted", "Pod", pod(spec)).as_deref(),
        Some(concat!(
            r#"violates PodSecurity "restricted:latest": "#,
            r#"allowPrivilegeEscalation != false (containers "init", "debug" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (containers "init", "debug" must set securityContext.capabilities.drop=["ALL"])"#,
        ))
    );
}

#[test]
fn restricted_exempts_windows_pods_from_the_linux_only_container_checks() {
    let windows = |security_context: Value| {
        pod(json!({
            "os": {"name": "windows"},
            "securityContext": security_context,
            "containers": [{"name": "app", "image": "mcr.microsoft.com/windows/nanoserver"}],
        }))
    };
    assert_cases(
        "restricted",
        vec![
            admitted(
                "a Windows pod without allowPrivilegeEscalation, capabilities or seccomp",
                windows(json!({"runAsNonRoot": true})),
            ),
            denied(
                "a Windows pod still needs runAsNonRoot",
                windows(json!({})),
                r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#,
            ),
            denied(
                "a Linux pod gets every check",
                pod(json!({"os": {"name": "linux"}, "containers": [app(json!({}))]})),
                &PLAIN_POD_RESTRICTED[r#"violates PodSecurity "restricted:latest": "#.len()..],
            ),
        ],
    );
}

/// `spec` placed where `kind` holds its pod template.
fn workload(kind: &str, spec: Value) -> Value {
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": spec});
    match kind {
        "CronJob" => {
            json!({"kind": kind, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}})
        }
        "PodTemplate" => json!({"kind": kind, "template": template}),
        _ => json!({"kind": kind, "spec": {"template": template}}),
    }
}

#[test]
fn workload_pod_templates_are_checked_with_the_pod_message() {
    for kind in [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
        "PodTemplate",
    ] {
        let plain = workload(kind, json!({"containers": [app(json!({}))]}));
        assert_eq!(
            denial("restricted", kind, plain).as_deref(),
            Some(PLAIN_POD_RESTRICTED),
            "{kind}"
        );
        let compliant = workload(kind, restricted_spec(json!({})));
        assert_eq!(denial("restricted", kind, compliant), None, "{kind}");
    }
}

#[test]
fn a_deployment_template_annotation_is_checked_like_a_pod_annotation() {
    let mut deployment = workload("Deployment", json!({"containers": [app(json!({}))]}));
    deployment["spec"]["template"]["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"});
    assert_eq!(
        denial("baseline", "Deployment", deployment).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:latest": forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined"")"#
        )
    );
}

#[test]
fn a_cron_job_template_is_checked_at_baseline() {
    let cron = workload(
        "CronJob",
        json!({"hostIPC": true, "containers": [app(json!({}))]}),
    );
    assert_eq!(
        denial("baseline", "CronJob", cron).as_deref(),
        Some(r#"violates PodSecurity "baseline:latest": host namespaces (hostIPC=true)"#)
    );
}

#[test]
fn a_workload_without_a_pod_template_is_admitted() {
    let deployment = json!({"kind": "Deployment", "spec": {"replicas": 1}});
    assert_eq!(denial("restricted", "Deployment", deployment), None);
}

#[test]
fn a_pod_without_a_spec_is_evaluated_as_an_empty_one_and_admitted() {
    assert_eq!(
        denial(
            "restricted",
            "Pod",
            json!({"kind": "Pod", "metadata": {"name": "p"}})
        ),
        None
    );
}

#[test]
fn deletes_and_connects_are_admitted() {
    let privileged =
        pod(json!({"containers": [app(json!({"securityContext": {"privileged": true}}))]}));
    let delete = Request::builder(Operation::Delete, "Pod")
        .old_object(privileged.clone())
        .build();
    assert!(review("restricted", &delete).is_allowed());
    let connect = Request::builder(Operation::Connect, "Pod")
        .object(privileged)
        .build();
    assert!(review("restricted", &connect).is_allowed());
}

#[test]
fn kinds_without_a_pod_spec_are_admitted() {
    for kind in ["ConfigMap", "Service", "Namespace", "CustomThing"] {
        let object =
            json!({"kind": kind, "spec": {"hostNetwork": true, "containers": [{"name": "x"}]}});
        assert_eq!(denial("restricted", kind, object), None, "{kind}");
    }
}

#[test]
fn subresources_other_than_ephemeral_containers_are_admitted() {
    let privileged =
        pod(json!({"containers": [app(json!({"securityContext": {"privileged": true}}))]}));
    for sub in ["status", "resize", "binding"] {
        let mut request = Request::builder(Operation::Update, "Pod")
            .object(privileged.clone())
            .build();
        request.sub_resource = Some(sub.into());
        assert!(review("baseline", &request).is_allowed(), "{sub}");
    }
    let mut scale = create(
        "Deployment",
        workload("Deployment", json!({"hostPID": true})),
    );
    scale.sub_resource = Some("scale".into());
    assert!(review("baseline", &scale).is_allowed());
}

#[test]
fn an_ephemeral_container_added_through_the_subresource_is_checked() {
    let old = pod(restricted_spec(json!({})));
    let new = pod(restricted_spec(
        json!({"ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "app"}]}),
    ));
    let mut request = Request::builder(Operation::Update, "Pod")
        .object(new)
        .old_object(old)
        .build();
    request.sub_resource = Some("ephemeralcontainers".into());
    let verdict = review("restricted", &request);
    assert_eq!(
        verdict.message(),
        Some(concat!(
            r#"violates PodSecurity "restricted:latest": "#,
            r#"allowPrivilegeEscalation != false (container "debug" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "debug" must set securityContext.capabilities.drop=["ALL"])"#,
        ))
    );
}

#[test]
fn a_pod_update_that_changes_no_image_is_admitted_like_psa_does() {
    let old = pod(json!({"containers": [app(json!({"securityContext": {"privileged": true}}))]}));
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"release": "2"});
    let update = Request::builder(Operation::Update, "Pod")
        .object(new)
        .old_object(old)
        .build();
    assert!(review("baseline", &update).is_allowed());
}

#[test]
fn a_pod_update_that_changes_an_image_is_checked() {
    let old = pod(json!({"containers": [app(json!({"securityContext": {"privileged": true}}))]}));
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let update = Request::builder(Operation::Update, "Pod")
        .object(new.clone())
        .old_object(old)
        .build();
    let privileged = r#"violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)"#;
    assert_eq!(review("baseline", &update).message(), Some(privileged));
    let without_old_object = Request::builder(Operation::Update, "Pod")
        .object(new)
        .build();
    assert_eq!(
        review("baseline", &without_old_object).message(),
        Some(privileged)
    );
}

#[test]
fn a_deployment_update_is_always_checked() {
    let old = workload(
        "Deployment",
        json!({"hostPID": true, "containers": [app(json!({}))]}),
    );
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(3);
    let update = Request::builder(Operation::Update, "Deployment")
        .object(new)
        .old_object(old)
        .build();
    assert_eq!(
        review("baseline", &update).message(),
        Some(r#"violates PodSecurity "baseline:latest": host namespaces (hostPID=true)"#)
    );
}

#[test]
fn annotation_values_are_quoted_like_go() {
    assert_eq!(go_quote("unconfined"), r#""unconfined""#);
    assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(go_quote("tab\tnew\nline\u{1}"), r#""tab\tnew\nline\x01""#);
    assert_eq!(go_quote("héllo\u{200b}"), r#""héllo\u200b""#);
    let annotated = pod_with(
        json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "x\"y"}}),
        json!({"containers": [app(json!({}))]}),
    );
    assert_eq!(
        denial("baseline", "Pod", annotated).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:latest": forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="x\"y"")"#
        )
    );
}

#[test]
fn settings_other_than_baseline_or_restricted_are_refused() {
    assert!(PodSecurity::validate_settings(&settings("baseline")).is_ok());
    assert!(PodSecurity::validate_settings(&settings("restricted")).is_ok());
    for (level, hint) in [
        ("", "`level` is missing"),
        ("privileged", "allows everything"),
        (
            "Restricted",
            "\"Restricted\" is not a Pod Security Standards level",
        ),
        ("restricted:latest", "use \"baseline\" or \"restricted\""),
    ] {
        let refusal = PodSecurity::validate_settings(&settings(level)).unwrap_err();
        assert!(refusal.contains(hint), "{level:?}: {refusal}");
    }
    let request = create("Pod", pod(json!({"containers": [app(json!({}))]})));
    assert!(PodSecurity::validate(&request, &settings("strict")).is_err());
}

#[test]
fn settings_parse_from_json_and_refuse_unknown_fields() {
    let parsed: Settings = serde_json::from_str(r#"{"level": "restricted"}"#).unwrap();
    assert_eq!(Level::parse(&parsed.level), Ok(Level::Restricted));
    let empty: Settings = serde_json::from_str("{}").unwrap();
    assert!(PodSecurity::validate_settings(&empty).is_err());
    assert!(
        serde_json::from_str::<Settings>(r#"{"level": "baseline", "mode": "enforce"}"#).is_err()
    );
}

#[test]
fn individual_checks_give_the_details_of_psa_own_unit_tests() {
    use crate::checks::{self, Check};
    let none = Value::Null;
    let cases: Vec<(&str, Check, Value, Value, &str, &str)> = vec![
        (
            "host ports of several containers",
            checks::host_ports,
            none.clone(),
            json!({"containers": [
                {"name": "a", "ports": [{"hostPort": 0}]},
                {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
                {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]},
            ]}),
            "hostPort",
            r#"containers "b", "c" use hostPorts 10, 20, 30"#,
        ),
        (
            "AppArmor annotations",
            checks::app_armor_profile,
            json!({"annotations": {
                "container.apparmor.security.beta.kubernetes.io/": "bogus",
                "container.apparmor.security.beta.kubernetes.io/a": "",
                "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
                "container.apparmor.security.beta.kubernetes.io/c": "localhost/",
                "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
                "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
                "container.apparmor.security.beta.kubernetes.io/f": "unknown",
            }}),
            json!({}),
            "forbidden AppArmor profiles",
            concat!(
                r#"annotations must not set AppArmor profile type to "#,
                r#""container.apparmor.security.beta.kubernetes.io/="bogus"", "#,
                r#""container.apparmor.security.beta.kubernetes.io/e="unconfined"", "#,
                r#""container.apparmor.security.beta.kubernetes.io/f="unknown"""#,
            ),
        ),
        (
            "allowPrivilegeEscalation of several containers",
            checks::allow_privilege_escalation,
            none.clone(),
            json!({"containers": [
                {"name": "a"},
                {"name": "b", "securityContext": {"allowPrivilegeEscalation": null}},
                {"name": "c", "securityContext": {"allowPrivilegeEscalation": true}},
                {"name": "d", "securityContext": {"allowPrivilegeEscalation": false}},
            ]}),
            "allowPrivilegeEscalation != false",
            r#"containers "a", "b", "c" must set securityContext.allowPrivilegeEscalation=false"#,
        ),
        (
            "runAsNonRoot false on containers without a pod setting",
            checks::run_as_non_root,
            none.clone(),
            json!({"containers": [
                {"name": "a"},
                {"name": "b", "securityContext": {}},
                {"name": "c", "securityContext": {"runAsNonRoot": false}},
                {"name": "d", "securityContext": {"runAsNonRoot": false}},
                {"name": "e", "securityContext": {"runAsNonRoot": true}},
                {"name": "f", "securityContext": {"runAsNonRoot": true}},
            ]}),
            "runAsNonRoot != true",
            r#"containers "c", "d" must not set securityContext.runAsNonRoot=false"#,
        ),
        (
            "SELinux type, user and role on the pod",
            checks::se_linux_options,
            none.clone(),
            json!({"securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}}}),
            "seLinuxOptions",
            r#"pod set forbidden securityContext.seLinuxOptions: type "foo"; user may not be set; role may not be set"#,
        ),
    ];
    for (what, check, metadata, spec, reason, detail) in cases {
        let failure = check(PodView {
            metadata: &metadata,
            spec: &spec,
        })
        .unwrap_or_else(|| panic!("{what}: expected a failure"));
        assert_eq!(
            (failure.reason.as_str(), failure.detail.as_str()),
            (reason, detail),
            "{what}"
        );
    }
}

#[test]
fn every_check_is_recorded_under_its_psa_id_with_the_failure_as_detail() {
    corbel_sdk::log::take_checks();
    let pod = json!({"spec": {"hostNetwork": true, "containers": [app(json!({}))]}});
    assert!(denial("baseline", "Pod", pod).is_some());
    let checks = corbel_sdk::log::take_checks();
    assert_eq!(checks.len(), checks::checks_for(false, u32::MAX).len());
    let failed: Vec<(&str, &str)> = checks
        .iter()
        .filter(|(_, passed, _)| !passed)
        .map(|(name, _, detail)| (name.as_str(), detail.as_str()))
        .collect();
    assert_eq!(
        failed,
        [("hostNamespaces", "host namespaces (hostNetwork=true)")]
    );
}

/// The AppArmor wording is Kubernetes' own as of v1.30 (`check_appArmorProfile.go` and its
/// test, `TestCheckAppArmor_Forbidden`): the setters, then "must not set AppArmor profile type
/// to", then the quoted values; an annotation's value is `key="value"` inside those quotes.
///
/// The shorter `forbidden AppArmor profiles (key="value")` that issue 14 quotes is what Kubernetes
/// *releases* up to v1.29 said, when only annotations were checked. It is not a policy version's
/// wording: v1.30 rewrote PSA's only AppArmor implementation (`appArmorProfile_1_0`, minimum
/// version v1.0) in place, so a v1.30+ API server says the same at `enforce-version: v1.29` or
/// any other version, and checks the `appArmorProfile` fields there too. This policy does as
/// upstream does, at every version.
#[test]
fn the_apparmor_annotation_message_is_the_one_kubernetes_latest_reports() {
    let pod = json!({
        "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
        "spec": {"containers": [app(json!({}))]},
    });
    assert_eq!(
        denial("baseline", "Pod", pod.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:latest": forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined"")"#
        )
    );
    assert_eq!(
        denial("baseline:v1.29", "Pod", pod).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.29": forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined"")"#
        ),
        "PSA has one AppArmor implementation for every policy version"
    );
}

#[test]
fn apparmor_annotations_and_fields_are_checked_at_every_version_with_plural_wording() {
    let pod = pod_with(
        json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/app": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/sidecar": "bogus",
        }}),
        json!({"containers": [
            app(json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}})),
            {"name": "sidecar", "image": "busybox"},
        ]}),
    );
    for version in ["v1.0", "v1.29", "v1.30", "latest"] {
        assert_eq!(
            denial(&format!("baseline:{version}"), "Pod", pod.clone()),
            Some(format!(
                r#"violates PodSecurity "baseline:{version}": forbidden AppArmor profiles (container "app" and annotations must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined"", "container.apparmor.security.beta.kubernetes.io/sidecar="bogus"")"#
            )),
        );
    }
}

#[test]
fn the_version_setting_takes_latest_or_v1_n_and_refuses_anything_else() {
    for (version, parsed) in [
        ("", Version::Latest),
        ("latest", Version::Latest),
        ("v1.0", Version::V1(0)),
        ("v1.29", Version::V1(29)),
        ("v1.40", Version::V1(40)),
    ] {
        assert_eq!(Version::parse(version), Ok(parsed), "{version:?}");
        assert!(
            PodSecurity::validate_settings(&settings_at(&format!("baseline:{version}"))).is_ok()
        );
    }
    for version in [
        "1.29", "v1.029", "v2.0", "v1.", "v1", "v1.x", "Latest", "v1.29.0", " v1.29", "v1.-1",
    ] {
        let refusal = PodSecurity::validate_settings(&settings_at(&format!("baseline:{version}")))
            .unwrap_err();
        assert_eq!(
            refusal,
            format!(
                "`version` {version:?} is not a Pod Security Admission policy version: use \"latest\" or \"v1.N\" such as \"v1.29\" (the namespace label pod-security.kubernetes.io/enforce-version)"
            )
        );
    }
    let parsed: Settings =
        serde_json::from_str(r#"{"level": "baseline", "version": "v1.29"}"#).unwrap();
    assert_eq!(Version::parse(&parsed.version), Ok(Version::V1(29)));
    assert_eq!(Version::V1(29).to_string(), "v1.29");
    assert_eq!(Version::Latest.to_string(), "latest");
}

#[test]
fn the_message_names_the_policy_version() {
    let privileged =
        pod(json!({"containers": [app(json!({"securityContext": {"privileged": true}}))]}));
    assert_eq!(
        denial("baseline:v1.29", "Pod", privileged.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.29": privileged (container "app" must not set securityContext.privileged=true)"#
        )
    );
    // A version newer than the checks know is evaluated as latest and named as given, as PSA does.
    assert_eq!(
        denial("baseline:v1.40", "Pod", privileged).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.40": privileged (container "app" must not set securityContext.privileged=true)"#
        )
    );
}

#[test]
fn selinux_container_engine_t_is_allowed_from_v1_31() {
    let engine = pod(json!({"containers": [app(json!({
        "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}},
    }))]}));
    assert_eq!(
        denial("baseline:v1.30", "Pod", engine.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.30": seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "container_engine_t")"#
        )
    );
    assert_eq!(denial("baseline:v1.31", "Pod", engine.clone()), None);
    assert_eq!(denial("baseline", "Pod", engine), None);
}

#[test]
fn the_safe_sysctls_grow_with_the_version() {
    let with = |name: &str| {
        pod(json!({
            "securityContext": {"sysctls": [{"name": name, "value": "1"}]},
            "containers": [app(json!({}))],
        }))
    };
    for (sysctl, first) in [
        ("kernel.shm_rmid_forced", 0),
        ("net.ipv4.ip_local_reserved_ports", 27),
        ("net.ipv4.tcp_keepalive_time", 29),
        ("net.ipv4.tcp_fin_timeout", 29),
        ("net.ipv4.tcp_rmem", 32),
        ("net.ipv4.tcp_wmem", 32),
    ] {
        if first > 0 {
            let before = format!("baseline:v1.{}", first - 1);
            assert_eq!(
                denial(&before, "Pod", with(sysctl)),
                Some(format!(
                    r#"violates PodSecurity "{before}": forbidden sysctls ({sysctl})"#
                )),
            );
        }
        assert_eq!(
            denial(&format!("baseline:v1.{first}"), "Pod", with(sysctl)),
            None
        );
        assert_eq!(denial("baseline", "Pod", with(sysctl)), None);
    }
}

#[test]
fn before_v1_19_seccomp_is_checked_in_its_annotations_not_its_fields() {
    let annotated = pod_with(
        json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/app": "",
            "container.seccomp.security.alpha.kubernetes.io/gone": "unconfined",
        }}),
        json!({"containers": [app(json!({}))]}),
    );
    assert_eq!(
        denial("baseline:v1.18", "Pod", annotated.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.18": seccompProfile (forbidden annotations container.seccomp.security.alpha.kubernetes.io/app="", seccomp.security.alpha.kubernetes.io/pod="unconfined")"#
        ),
        "an annotation naming no container is not read"
    );
    assert_eq!(denial("baseline:v1.19", "Pod", annotated), None);

    let allowed = pod_with(
        json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "docker/default",
            "container.seccomp.security.alpha.kubernetes.io/app": "localhost/profile.json",
        }}),
        json!({"containers": [app(json!({}))]}),
    );
    assert_eq!(denial("baseline:v1.0", "Pod", allowed), None);

    let field = pod(json!({
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [app(json!({}))],
    }));
    assert_eq!(denial("baseline:v1.18", "Pod", field.clone()), None);
    assert_eq!(
        denial("baseline:v1.19", "Pod", field).as_deref(),
        Some(
            r#"violates PodSecurity "baseline:v1.19": seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
        )
    );
}

#[test]
fn restricted_checks_apply_from_their_minimum_versions() {
    let plain = pod(json!({"containers": [app(json!({}))]}));
    // v1.7: no allowPrivilegeEscalation (v1.8), capabilities_restricted (v1.22),
    // seccompProfile_restricted (v1.19) or runAsUser (v1.23) yet.
    assert_eq!(
        denial("restricted:v1.7", "Pod", plain.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "restricted:v1.7": runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#
        )
    );
    assert_eq!(
        denial("restricted:v1.8", "Pod", plain.clone()).as_deref(),
        Some(concat!(
            r#"violates PodSecurity "restricted:v1.8": "#,
            r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#,
        ))
    );
    assert_eq!(
        denial("restricted:v1.22", "Pod", plain.clone()),
        denial("restricted", "Pod", plain)
            .map(|m| m.replace("restricted:latest", "restricted:v1.22")),
        "the four Linux checks of a plain pod are all there from v1.22"
    );

    // runAsUser=0 is refused from v1.23.
    let root = pod(restricted_spec(
        json!({"securityContext": {"runAsUser": 0}}),
    ));
    assert_eq!(denial("restricted:v1.22", "Pod", root.clone()), None);
    assert_eq!(
        denial("restricted:v1.23", "Pod", root).as_deref(),
        Some(
            r#"violates PodSecurity "restricted:v1.23": runAsUser=0 (pod must not set runAsUser=0)"#
        )
    );

    // Before capabilities_restricted (v1.22), restricted runs capabilities_baseline instead.
    let sys_admin = pod(restricted_spec(json!({"containers": [restricted_container(
        "app",
        json!({"capabilities": {"drop": null, "add": ["SYS_ADMIN"]}}),
    )]})));
    assert_eq!(
        denial("restricted:v1.21", "Pod", sys_admin.clone()).as_deref(),
        Some(
            r#"violates PodSecurity "restricted:v1.21": non-default capabilities (container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
        )
    );
    assert_eq!(
        denial("restricted:v1.22", "Pod", sys_admin).as_deref(),
        Some(
            r#"violates PodSecurity "restricted:v1.22": unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]; container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
        )
    );
}

#[test]
fn windows_pods_are_exempt_from_the_linux_only_checks_from_v1_25() {
    let windows = pod(json!({
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app", "image": "mcr.microsoft.com/windows/nanoserver"}],
    }));
    assert_eq!(denial("restricted:v1.25", "Pod", windows.clone()), None);
    assert_eq!(
        denial("restricted:v1.24", "Pod", windows).as_deref(),
        Some(concat!(
            r#"violates PodSecurity "restricted:v1.24": "#,
            r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        ))
    );
}

#[test]
fn each_version_runs_the_checks_psa_registers_for_it() {
    let ids = |restricted: bool, minor: u32| -> Vec<&str> {
        checks::checks_for(restricted, minor)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    let baseline = [
        "appArmorProfile",
        "capabilities_baseline",
        "hostNamespaces",
        "hostPathVolumes",
        "hostPorts",
        "privileged",
        "procMount",
        "seLinuxOptions",
        "seccompProfile_baseline",
        "sysctls",
        "windowsHostProcess",
    ];
    for minor in [0, 19, 29, 31, u32::MAX] {
        assert_eq!(ids(false, minor), baseline, "baseline v1.{minor}");
    }
    assert_eq!(
        ids(true, 0),
        [
            "appArmorProfile",
            "capabilities_baseline",
            "hostNamespaces",
            "hostPorts",
            "privileged",
            "procMount",
            "seLinuxOptions",
            "seccompProfile_baseline",
            "sysctls",
            "windowsHostProcess",
            "restrictedVolumes",
            "runAsNonRoot",
        ]
    );
    let latest = [
        "appArmorProfile",
        "hostNamespaces",
        "hostPorts",
        "privileged",
        "procMount",
        "seLinuxOptions",
        "sysctls",
        "windowsHostProcess",
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "restrictedVolumes",
        "runAsNonRoot",
        "runAsUser",
        "seccompProfile_restricted",
    ];
    assert_eq!(ids(true, 23), latest);
    assert_eq!(ids(true, u32::MAX), latest);
}
