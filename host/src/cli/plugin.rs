//! `corbel plugin …`: publish, sign, install, list, remove and inspect plugins in OCI registries.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::config::{Config, RegistryConfig};
use crate::registry::artifact::{self, ComponentInfo};
use crate::registry::client::{self, Options, Registry};
use crate::registry::plugins::{self, Settings};
use crate::registry::signature;
use crate::runtime::{Runtime, RuntimeConfig, inspect};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Publish a component to a registry, in the CNCF Wasm OCI artifact layout; prints its digest.
    ///
    /// The manifest's config (application/vnd.wasm.config.v0+json) lists the component's imports
    /// and exports; the one layer (application/wasm) is the component itself.
    /// Example: corbel plugin push require_labels.wasm oci://registry.example:5000/policies/require-labels:v1
    Push {
        /// The component (.wasm). A core module is refused: Corbel loads components.
        file: PathBuf,
        /// Where to publish: [oci://]HOST[:PORT]/REPOSITORY:TAG
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Sign a published plugin with a cosign-compatible signature (stored under sha256-<hex>.sig).
    ///
    /// The key is an ECDSA P-256 private key: PEM PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY"),
    /// or cosign's encrypted "ENCRYPTED SIGSTORE PRIVATE KEY" (password from COSIGN_PASSWORD).
    /// A tag is resolved to its digest first; the signature covers that digest.
    Sign {
        /// The plugin: [oci://]HOST/REPOSITORY:TAG or …@sha256:…
        reference: String,
        /// The private key file (cosign.key, or a PEM PKCS#8 EC key).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Install a plugin: resolve the tag to a digest, verify its signature against
    /// registry.trustedKeys, pull it into the cache (digest-checked), compile it, and record the
    /// digest in the lock file, so `corbel serve` uses exactly that, with no network.
    ///
    /// Bindings then name it as plugin: oci://HOST/REPOSITORY:TAG (or @sha256:…).
    Install {
        /// The plugin: [oci://]HOST/REPOSITORY:TAG or …@sha256:…
        reference: String,
        /// The name to list it under (default: the repository's last segment).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List the installed plugins (the lock file), and whether each is in the cache.
    List {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed plugin from the lock file, and its component from the cache.
    Remove {
        /// The name `corbel plugin list` shows.
        name: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show a plugin's manifest, layout, signatures and WIT interface: a registry reference or a
    /// local .wasm file.
    Inspect {
        /// [oci://]HOST/REPOSITORY:TAG, …@sha256:…, or a .wasm file.
        target: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// Options shared by the commands that touch a registry or the cache.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The configuration file whose `registry` section (cache, lock file, CA, trusted keys) applies;
    /// the lock file defaults to corbel.lock beside it.
    #[arg(long, short, env = "CORBEL_CONFIG", default_value = "corbel.yaml")]
    config: PathBuf,
    /// A PEM CA certificate to trust for the registry (besides registry.caFile and the system's).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Registry user name (else credentials come from $DOCKER_CONFIG/config.json or ~/.docker/config.json).
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password (or token) from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl RegistryArgs {
    /// The registry settings: the configuration file's when it exists (required by commands
    /// that use the lock file), with the flags applied.
    fn settings(&self, need_config: bool) -> anyhow::Result<Settings> {
        let registry = if self.config.exists() {
            let config = Config::load(&self.config)?;
            config.registry
        } else if need_config {
            bail!(
                "the configuration file {} does not exist: give --config (the lock file lives beside it)",
                self.config.display()
            );
        } else {
            RegistryConfig {
                lock_file: Some(PathBuf::from("corbel.lock")),
                ..Default::default()
            }
        };
        let mut ca_files: Vec<PathBuf> = registry.ca_file.iter().cloned().collect();
        ca_files.extend(self.ca_file.iter().cloned());
        let credentials = match (&self.username, self.password_stdin) {
            (Some(user), true) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("failed to read the password from standard input")?;
                Some((
                    user.clone(),
                    password.trim_end_matches(['\n', '\r']).to_owned(),
                ))
            }
            _ => None,
        };
        Ok(Settings {
            cache_dir: registry.cache_dir(),
            lock_file: registry
                .lock_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("corbel.lock")),
            trusted_keys: registry.trusted_keys.clone(),
            allow_unsigned: registry.allow_unsigned.clone(),
            options: Options {
                ca_files,
                credentials,
            },
        })
    }
}

/// The runtime a configuration's `serve` would build, so artifacts compiled by `install` are
/// the ones `serve` finds in the cache (their key includes the engine's settings).
fn runtime_for(config: &Path) -> anyhow::Result<Runtime> {
    let runtime_config = if config.exists() {
        super::runtime_config(&Config::load(config)?)
    } else {
        super::runtime_config_for(&[], 256)
    };
    Runtime::new(&runtime_config)
}

pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Push {
            file,
            reference,
            registry,
        } => push(&file, &reference, &registry).await,
        PluginCommand::Sign {
            reference,
            key,
            registry,
        } => sign(&reference, &key, &registry).await,
        PluginCommand::Install {
            reference,
            name,
            registry,
        } => {
            let settings = registry.settings(true)?;
            let runtime = runtime_for(&registry.config)?;
            let installed =
                plugins::install(&settings, &runtime, &reference, name.as_deref(), true)
                    .await
                    .with_context(|| format!("failed to install {reference}"))?;
            let e = &installed.entry;
            eprintln!(
                "installed {} as {:?}: {} ({} bytes, {}{}), locked in {}",
                e.reference,
                e.name,
                e.manifest_digest,
                e.size,
                match &e.signed_by {
                    Some(key) => format!("signed by {key}"),
                    None => "unsigned, allowed by registry.allowUnsigned".into(),
                },
                if installed.was_cached {
                    ", already cached"
                } else {
                    ""
                },
                settings.lock_file.display()
            );
            println!("{}", e.manifest_digest);
            Ok(())
        }
        PluginCommand::List { registry, json } => {
            let settings = registry.settings(true)?;
            let list = plugins::list(&settings)?;
            if json {
                let list: Vec<_> = list
                    .iter()
                    .map(|(e, cached)| {
                        let mut v = serde_json::to_value(e).expect("serializes");
                        v["cached"] = (*cached).into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                eprintln!(
                    "no plugins installed in {} (corbel plugin install REF)",
                    settings.lock_file.display()
                );
            }
            for (e, cached) in list {
                println!(
                    "{:<24} {:<60} {} {:>9} {}{}",
                    e.name,
                    e.reference,
                    &e.manifest_digest[..e.manifest_digest.len().min(19)],
                    e.size,
                    if e.signed_by.is_some() {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    if cached {
                        ""
                    } else {
                        " (not in cache: install again)"
                    }
                );
            }
            Ok(())
        }
        PluginCommand::Remove { name, registry } => {
            let settings = registry.settings(true)?;
            let removed = plugins::remove(&settings, &name)?;
            eprintln!("removed {} ({})", removed.name, removed.reference);
            Ok(())
        }
        PluginCommand::Inspect {
            target,
            json,
            registry,
        } => inspect_target(&target, json, &registry).await,
    }
}

/// A component's imports and exports as the artifact config lists them.
fn component_info(runtime: &Runtime, bytes: &[u8], what: &str) -> anyhow::Result<ComponentInfo> {
    artifact::check_component(what, bytes)?;
    let component = runtime
        .compile(bytes)
        .with_context(|| format!("{what} does not compile"))?;
    let description = inspect::describe(runtime.engine(), &component);
    Ok(ComponentInfo {
        exports: description.exports.iter().map(|i| i.name.clone()).collect(),
        imports: description.imports.iter().map(|i| i.name.clone()).collect(),
        target: description.world.clone(),
    })
}

async fn push(file: &Path, reference: &str, args: &RegistryArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    let parsed = client::parse_reference(reference)?;
    if parsed.digest().is_some() {
        bail!("push to a tag (…:v1), not a digest: the digest is what push prints");
    }
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 1,
        max_memory: 64 << 20,
    })?;
    let info = component_info(&runtime, &bytes, &file.display().to_string())?;
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let title = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let packaged = artifact::package(&bytes, info, title.as_deref(), &created);
    let registry = Registry::new(args.settings(false)?.options)?;
    let digest = registry
        .push(&parsed, &packaged, &bytes)
        .await
        .with_context(|| format!("failed to push {} to {reference}", file.display()))?;
    eprintln!(
        "pushed {} ({} bytes) to {}",
        file.display(),
        bytes.len(),
        parsed.whole()
    );
    println!("{digest}");
    Ok(())
}

async fn sign(reference: &str, key: &Path, args: &RegistryArgs) -> anyhow::Result<()> {
    let password = std::env::var("COSIGN_PASSWORD").ok();
    let signing_key = signature::read_private_key(key, password.as_deref())?;
    let parsed = client::parse_reference(reference)?;
    let registry = Registry::new(args.settings(false)?.options)?;
    let resolved = registry
        .resolve(&parsed)
        .await
        .with_context(|| format!("failed to resolve {reference}"))?;
    let payload = signature::payload(&client::repository(&parsed), &resolved.manifest_digest);
    let sig = signature::sign(&signing_key, &payload);
    let tag = registry
        .push_signature(&parsed, &resolved.manifest_digest, &payload, &sig)
        .await
        .with_context(|| format!("failed to store the signature of {reference}"))?;
    eprintln!(
        "signed {} ({}): {tag}",
        parsed.whole(),
        resolved.manifest_digest
    );
    println!("{}", resolved.manifest_digest);
    Ok(())
}

async fn inspect_target(target: &str, json: bool, args: &RegistryArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 1,
        max_memory: 64 << 20,
    })?;
    let is_file = !target.starts_with("oci://") && Path::new(target).exists();
    if is_file {
        let bytes = std::fs::read(target).with_context(|| format!("failed to read {target}"))?;
        artifact::check_component(target, &bytes)?;
        let component = runtime
            .compile(&bytes)
            .with_context(|| format!("{target} does not compile"))?;
        let description = inspect::describe(runtime.engine(), &component);
        let digest = artifact::sha256_digest(&bytes);
        if json {
            let mut v = serde_json::to_value(&description)?;
            v["digest"] = digest.into();
            v["size"] = bytes.len().into();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("file:     {target} ({} bytes)", bytes.len());
            println!("digest:   {digest}");
            print_description(&description);
        }
        return Ok(());
    }
    let parsed = client::parse_reference(target)?;
    let settings = args.settings(false)?;
    let registry = Registry::new(settings.options.clone())?;
    let resolved = registry
        .resolve(&parsed)
        .await
        .with_context(|| format!("failed to resolve {target}"))?;
    let config = registry.wasm_config(&parsed, &resolved).await?;
    let component = config.as_ref().and_then(|c| c.component.as_ref());
    let signatures = registry
        .signatures(&parsed, &resolved.manifest_digest)
        .await?;
    let keys: Vec<_> = settings
        .trusted_keys
        .iter()
        .map(|p| signature::read_public_key(p))
        .collect::<Result<_, _>>()?;
    let verdicts: Vec<String> = signatures
        .iter()
        .map(|(payload, sig)| {
            match signature::verify(&keys, payload, sig, &resolved.manifest_digest) {
                Ok(key) => format!("verified by {} ({})", key.source, key.fingerprint()),
                Err(why) => format!("not verified: {why}"),
            }
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reference": parsed.whole(),
                "manifestDigest": resolved.manifest_digest,
                "layout": resolved.layout,
                "manifest": resolved.manifest,
                "component": resolved.layer,
                "config": config,
                "signatures": verdicts,
            }))?
        );
        return Ok(());
    }
    println!("reference: {}", parsed.whole());
    println!("digest:    {}", resolved.manifest_digest);
    println!(
        "layout:    {}",
        match resolved.layout {
            artifact::Layout::WasmV0 =>
                "CNCF Wasm OCI artifact (application/vnd.wasm.config.v0+json)",
            artifact::Layout::WasmV1 => "older Wasm layout (application/vnd.wasm.config.v1+json)",
        }
    );
    println!(
        "component: {} ({} bytes, {})",
        resolved.layer.digest, resolved.layer.size, resolved.layer.media_type
    );
    for (key, value) in &resolved.manifest.annotations {
        println!("  {key}: {value}");
    }
    match component {
        Some(info) => {
            if let Some(world) = &info.target {
                println!("world:     {world}");
            }
            for (what, names) in [("imports", &info.imports), ("exports", &info.exports)] {
                println!("{what}:");
                for name in names {
                    println!("  {name}");
                }
            }
        }
        None => println!(
            "imports and exports: not recorded in the artifact's config (pull it and run `corbel inspect FILE`)"
        ),
    }
    if verdicts.is_empty() {
        println!("signatures: none");
    } else {
        println!("signatures:");
        for v in verdicts {
            println!("  {v}");
        }
    }
    Ok(())
}

pub(crate) fn print_description(description: &inspect::Description) {
    println!(
        "package:  {}",
        description
            .package
            .as_deref()
            .unwrap_or("(none: not a Corbel plugin)")
    );
    println!(
        "world:    {}",
        description.world.as_deref().unwrap_or("(none)")
    );
    match &description.loadable {
        Ok(()) => println!("loadable: yes"),
        Err(why) => println!("loadable: no: {why}"),
    }
    for (title, items) in [
        ("imports", &description.imports),
        ("exports", &description.exports),
    ] {
        println!("{title}:");
        for item in items {
            println!("  {}: {}", item.name, item.functions.join(", "));
        }
    }
}
