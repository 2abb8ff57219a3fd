//! ConfigMaps and Secrets on the command line, as kubectl shows them:
//! `get configmaps|cm|secrets [NAME] [-o yaml|json|name]` (NAME DATA AGE;
//! secrets NAME TYPE DATA AGE), `describe configmap|secret NAME` (a
//! Secret's values are never printed: `key:  N bytes`), and
//! `create configmap|secret generic NAME --from-literal --from-file
//! --from-env-file` with kubectl's checks and messages.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use hyper::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use serde_json::Value;

use super::get::Output;
use super::table::{age, tabwrite, Table};
use super::transport::{encode, object_path, Client};

/// `configmaps` or `secrets` for the names kubectl accepts.
pub fn resource(r: &str) -> Option<&'static str> {
    match r {
        "configmap" | "configmaps" | "cm" => Some("configmaps"),
        "secret" | "secrets" => Some("secrets"),
        _ => None,
    }
}

fn data_count(resource: &str, v: &Value) -> usize {
    let count = |k: &str| v.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
    if resource == "configmaps" {
        count("data") + count("binaryData")
    } else {
        count("data")
    }
}

/// `peapod get configmaps|secrets [NAME]`.
pub async fn get(
    client: &Client,
    resource: &str,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Output,
) -> Result<()> {
    let all_namespaces = all_namespaces && name.is_none();
    let list = if all_namespaces {
        format!("/api/v1/{resource}")
    } else {
        format!("/api/v1/namespaces/{}/{resource}", encode(namespace))
    };
    let one = name.map(|n| object_path(resource, namespace, n));
    let (items, single) = one_or_list(client, one, &list).await?;
    let kind = resource.trim_end_matches('s');
    let out = match output {
        Output::Json | Output::Yaml => structured(items, single, output)?,
        Output::Name => items
            .iter()
            .map(|v| format!("{kind}/{}\n", v["metadata"]["name"].as_str().unwrap_or("")))
            .collect(),
        Output::Default | Output::Wide => {
            if items.is_empty() {
                if all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {namespace} namespace.");
                }
                return Ok(());
            }
            let now = Utc::now();
            let mut head: Vec<String> = Vec::new();
            if all_namespaces {
                head.push("NAMESPACE".into());
            }
            head.push("NAME".into());
            if resource == "secrets" {
                head.push("TYPE".into());
            }
            head.extend(["DATA".into(), "AGE".into()]);
            let mut rows: Vec<Vec<String>> = vec![head];
            for v in &items {
                let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
                    serde_json::from_value(v["metadata"].clone()).unwrap_or_default();
                let mut row = Vec::new();
                if all_namespaces {
                    row.push(meta.namespace.clone().unwrap_or_default());
                }
                row.push(meta.name.clone().unwrap_or_default());
                if resource == "secrets" {
                    row.push(v["type"].as_str().unwrap_or("Opaque").to_string());
                }
                row.push(data_count(resource, v).to_string());
                row.push(age(meta.creation_timestamp.as_ref(), now));
                rows.push(row);
            }
            Table::kubectl().render(&rows)
        }
    };
    print!("{out}");
    Ok(())
}

pub fn map_lines(title: &str, m: Option<&BTreeMap<String, String>>, sep: &str) -> String {
    match m.filter(|m| !m.is_empty()) {
        None => format!("{title}:\t<none>\n"),
        Some(m) => m
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let head = if i == 0 {
                    format!("{title}:")
                } else {
                    String::new()
                };
                format!("{head}\t{k}{sep}{v}\n")
            })
            .collect(),
    }
}

pub fn header(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "Name:\t{}\nNamespace:\t{}\n{}{}",
        meta.name.as_deref().unwrap_or(""),
        meta.namespace.as_deref().unwrap_or(""),
        map_lines("Labels", meta.labels.as_ref(), "="),
        map_lines("Annotations", meta.annotations.as_ref(), ": "),
    )
}

/// kubectl's describe of a ConfigMap.
pub fn describe_config_map_text(cm: &ConfigMap) -> String {
    let mut out = header(&cm.metadata);
    out.push_str("\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        out.push_str(&format!("{k}:\n----\n{v}\n\n"));
    }
    out.push_str("\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        out.push_str(&format!("{k}: {} bytes\n", v.0.len()));
    }
    out.push_str("\nEvents:\t<none>\n");
    tabwrite(&out, 0, 2)
}

/// kubectl's describe of a Secret: sizes, never values.
pub fn describe_secret_text(s: &Secret) -> String {
    let mut out = header(&s.metadata);
    out.push_str(&format!(
        "\nType:\t{}\n\nData\n====\n",
        s.type_.as_deref().unwrap_or("Opaque")
    ));
    for (k, v) in s.data.iter().flatten() {
        out.push_str(&format!("{k}:\t{} bytes\n", v.0.len()));
    }
    tabwrite(&out, 0, 2)
}

/// `peapod describe configmap|secret NAME`.
pub async fn describe(client: &Client, resource: &str, namespace: &str, name: &str) -> Result<()> {
    let path = object_path(resource, namespace, name);
    let text = if resource == "secrets" {
        let s: Secret = client.get_json(&path).await?;
        describe_secret_text(&s)
    } else {
        let cm: ConfigMap = client.get_json(&path).await?;
        describe_config_map_text(&cm)
    };
    print!("{text}");
    Ok(())
}

/// `--from-*` sources of `create configmap` / `create secret generic`.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub env_files: Vec<String>,
}

/// The environment variable name rule kubectl checks env files with
/// (apimachinery's `IsEnvVarName`: printable ASCII but `=`).
fn env_name_errors(k: &str) -> Option<String> {
    let ok = !k.is_empty() && k.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=');
    (!ok).then(|| {
        "a valid environment variable name must consist only of printable ASCII characters other than '='".to_string()
    })
}

/// The pairs of an env file (`KEY=value` lines; blank lines and `#`
/// comments skipped; a bare `KEY` takes the value from this environment),
/// with kubectl's errors.
pub fn parse_env_file(path: &str, text: &[u8]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| {
            anyhow!(
                "error: env file {path} contains invalid utf8 bytes at line {}: {raw:?}",
                i + 1
            )
        })?;
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.to_string(), std::env::var(line).unwrap_or_default()),
        };
        if let Some(e) = env_name_errors(&key) {
            bail!("error: {key:?} is not a valid key name: {e}");
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Every key → bytes the sources give, in kubectl's order (literals, then
/// files, or the env files), checked as kubectl checks them. `kind` is
/// `ConfigMap` or `Secret`.
pub fn gather(kind: &str, name: &str, src: &Sources) -> Result<Vec<(String, Vec<u8>)>> {
    if !src.env_files.is_empty() && (!src.literals.is_empty() || !src.files.is_empty()) {
        bail!("error: from-env-file cannot be combined with from-file or from-literal");
    }
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |key: String, value: Vec<u8>| -> Result<()> {
        let errs = peapod_api::config_key_errors(&key);
        if !errs.is_empty() {
            if kind == "Secret" {
                bail!(
                    "error: {key:?} is not valid key name for a Secret {}",
                    errs.join(";")
                );
            }
            bail!(
                "error: {key:?} is not a valid key name for a ConfigMap: {}",
                errs.join(",")
            );
        }
        if out.iter().any(|(k, _)| *k == key) {
            if kind == "Secret" {
                bail!("error: cannot add key {key}, another key by that name already exists");
            }
            bail!("error: cannot add key {key:?}, another key by that name already exists in Data for ConfigMap {name:?}");
        }
        out.push((key, value));
        Ok(())
    };
    for lit in &src.literals {
        let Some((k, v)) = lit.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("error: invalid literal source {lit}, expected key=value");
        };
        // kubectl strips one pair of surrounding quotes.
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        add(k.to_string(), v.as_bytes().to_vec())?;
    }
    for f in &src.files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => {
                if k.is_empty() || p.is_empty() {
                    bail!("error: key names or file paths cannot be empty");
                }
                (Some(k.to_string()), p.to_string())
            }
            None => (None, f.clone()),
        };
        let meta = std::fs::metadata(&path)
            .map_err(|e| anyhow!("error: error reading {path}: {}", io_text(&e)))?;
        if meta.is_dir() {
            if key.is_some() {
                bail!("error: cannot give a key name for a directory path");
            }
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| anyhow!("error: error listing files in {path}: {}", io_text(&e)))?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let data = std::fs::read(&p).map_err(|err| {
                    anyhow!("error: error reading {}: {}", p.display(), io_text(&err))
                })?;
                add(e.file_name().to_string_lossy().into_owned(), data)?;
            }
        } else {
            let data = std::fs::read(&path)
                .map_err(|e| anyhow!("error: error reading {path}: {}", io_text(&e)))?;
            let key = key.unwrap_or_else(|| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            add(key, data)?;
        }
    }
    for f in &src.env_files {
        let text =
            std::fs::read(f).map_err(|e| anyhow!("error: error reading {f}: {}", io_text(&e)))?;
        for (k, v) in parse_env_file(f, &text)? {
            add(k, v.into_bytes())?;
        }
    }
    Ok(out)
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// What `create configmap|secret generic` was asked.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub sources: Sources,
    /// `none` or `client`.
    pub dry_run: String,
    /// `-o yaml|json|name`.
    pub output: Option<String>,
    /// `--type` of a Secret.
    pub secret_type: Option<String>,
}

/// The object as `-o` asks for it.
fn print_object(resource: &str, name: &str, value: &Value, output: &str) -> Result<String> {
    Ok(match output {
        "yaml" => {
            serde_yaml_ng::to_string(value).map_err(|e| anyhow!("error: cannot print YAML: {e}"))?
        }
        "json" => format!(
            "{}\n",
            serde_json::to_string_pretty(value)
                .map_err(|e| anyhow!("error: cannot print JSON: {e}"))?
        ),
        "name" => format!("{}/{name}\n", resource.trim_end_matches('s')),
        other => bail!(
            "error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,yaml"
        ),
    })
}

/// `peapod create configmap NAME ...` / `peapod create secret generic NAME ...`
/// (`--dry-run=client -o yaml` prints the object for `apply -f -`).
pub async fn create(
    client: &Client,
    resource: &str,
    namespace: &str,
    name: &str,
    opts: CreateOptions,
) -> Result<()> {
    let dry_run = match opts.dry_run.as_str() {
        "none" => false,
        "client" => true,
        "server" => {
            bail!("error: --dry-run=server is not supported by peapod; use --dry-run=client")
        }
        other => bail!(
            "error: Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
        ),
    };
    if let Some(o) = opts.output.as_deref() {
        print_object(resource, name, &Value::Null, o).map(drop)?;
    }
    let src = &opts.sources;
    // The namespace is written only when it is not the default one, as
    // kubectl's dry-run output leaves it out.
    let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.to_string()),
        namespace: (namespace != peapod_api::DEFAULT_NAMESPACE).then(|| namespace.to_string()),
        ..Default::default()
    };
    let value = if resource == "secrets" {
        let pairs = gather("Secret", name, src)?;
        let s = Secret {
            metadata: meta,
            type_: Some(opts.secret_type.clone().unwrap_or_else(|| "Opaque".into())),
            data: Some(pairs.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
            ..Default::default()
        };
        let mut check = s.clone();
        peapod_api::default_secret(&mut check);
        peapod_api::validate_secret(&check).map_err(|e| anyhow!("The {e}"))?;
        serde_json::to_value(&s)
    } else {
        let pairs = gather("ConfigMap", name, src)?;
        let (mut data, mut binary) = (BTreeMap::new(), BTreeMap::new());
        for (k, v) in pairs {
            match String::from_utf8(v) {
                Ok(text) => {
                    data.insert(k, text);
                }
                Err(e) => {
                    binary.insert(k, ByteString(e.into_bytes()));
                }
            }
        }
        let cm = ConfigMap {
            metadata: meta,
            data: (!data.is_empty()).then_some(data),
            binary_data: (!binary.is_empty()).then_some(binary),
            ..Default::default()
        };
        peapod_api::validate_config_map(&cm).map_err(|e| anyhow!("The {e}"))?;
        serde_json::to_value(&cm)
    }
    .map_err(|e| anyhow!("error: cannot encode {name:?}: {e}"))?;
    let kind = resource.trim_end_matches('s');
    if dry_run {
        match opts.output.as_deref() {
            Some(o) => print!("{}", print_object(resource, name, &value, o)?),
            None => println!("{kind}/{name} created (dry run)"),
        }
        return Ok(());
    }
    let body =
        serde_json::to_vec(&value).map_err(|e| anyhow!("error: cannot encode {name:?}: {e}"))?;
    let created: Value = client
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/{}/{resource}", encode(namespace)),
            Some(body),
            Some("application/json"),
        )
        .await?
        .json()?;
    match opts.output.as_deref() {
        Some(o) => print!("{}", print_object(resource, name, &created, o)?),
        None => println!("{kind}/{name} created"),
    }
    Ok(())
}

/// The object at `one` (when a name was given) or the items of the list
/// at `list`, and whether it is one object.
pub async fn one_or_list(
    client: &Client,
    one: Option<String>,
    list: &str,
) -> Result<(Vec<Value>, bool)> {
    Ok(match one {
        Some(path) => (vec![client.get_json::<Value>(&path).await?], true),
        None => (list_items(client, list).await?, false),
    })
}

/// The `items` of a list the daemon serves at `path`.
pub async fn list_items(client: &Client, path: &str) -> Result<Vec<Value>> {
    let list: Value = client.get_json(path).await?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// `-o json|yaml`: one object, or a `List` of them as kubectl prints it.
pub fn structured(items: Vec<Value>, single: bool, output: Output) -> Result<String> {
    let value = if single {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items, "metadata": { "resourceVersion": "" } })
    };
    Ok(if output == Output::Yaml {
        serde_yaml_ng::to_string(&value).map_err(|e| anyhow!("error: cannot print YAML: {e}"))?
    } else {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value)
                .map_err(|e| anyhow!("error: cannot print JSON: {e}"))?
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_as_kubectl_reads_them() {
        let text =
            b"\xef\xbb\xbf# comment\n\n  A=1\nB==x=\r\nC=\n  # indented comment\nD=with spaces \n";
        assert_eq!(
            parse_env_file("f.env", text).unwrap(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "=x=".into()),
                ("C".into(), "".into()),
                ("D".into(), "with spaces ".into()),
            ]
        );
        // A leading digit is fine (the relaxed rule); a tab is not printable.
        assert_eq!(parse_env_file("f.env", b"1A=x\n").unwrap()[0].0, "1A");
        let e = parse_env_file("f.env", b"A\tB=x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "error: \"A\\tB\" is not a valid key name: a valid environment variable name must consist only of printable ASCII characters other than '='");
        let e = parse_env_file("f.env", b"A=1\nB=\xff\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains invalid utf8 bytes at line 2"), "{e}");
    }

    #[test]
    fn literal_and_duplicate_errors() {
        let src = |lits: &[&str]| Sources {
            literals: lits.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            gather("ConfigMap", "cfg", &src(&["a=1", "b='two'"])).unwrap(),
            [
                ("a".to_string(), b"1".to_vec()),
                ("b".into(), b"two".to_vec())
            ]
        );
        assert_eq!(
            gather("ConfigMap", "cfg", &src(&["a=1", "a=2"])).unwrap_err().to_string(),
            "error: cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"cfg\""
        );
        assert_eq!(
            gather("Secret", "s", &src(&["a=1", "a=2"]))
                .unwrap_err()
                .to_string(),
            "error: cannot add key a, another key by that name already exists"
        );
        assert_eq!(
            gather("ConfigMap", "cfg", &src(&["novalue"]))
                .unwrap_err()
                .to_string(),
            "error: invalid literal source novalue, expected key=value"
        );
        assert!(gather("ConfigMap", "cfg", &src(&["a b=1"]))
            .unwrap_err()
            .to_string()
            .starts_with(
                "error: \"a b\" is not a valid key name for a ConfigMap: a valid config key"
            ));
        let both = Sources {
            literals: vec!["a=1".into()],
            env_files: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            gather("ConfigMap", "cfg", &both).unwrap_err().to_string(),
            "error: from-env-file cannot be combined with from-file or from-literal"
        );
    }

    #[test]
    fn describe_secret_shows_sizes_only() {
        let mut s: Secret = serde_yaml_ng::from_str(
            "metadata: {name: db, namespace: default}\nstringData: {password: hunter2, user: admin}\n",
        )
        .unwrap();
        peapod_api::default_secret(&mut s);
        assert_eq!(
            describe_secret_text(&s),
            "Name:         db\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nType:  Opaque\n\nData\n====\npassword:  7 bytes\nuser:      5 bytes\n"
        );
    }
}
