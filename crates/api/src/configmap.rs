//! ConfigMaps: defaulting and validation as the API server does it, and the
//! config-key rule ConfigMaps and Secrets share (`IsConfigMapKey`).

use k8s_openapi::api::core::v1::ConfigMap;

/// The most a ConfigMap's or Secret's data may hold in total (1 MiB).
pub const MAX_CONFIG_SIZE: usize = 1024 * 1024;

const KEY_MESSAGE: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Why `key` is not a valid ConfigMap/Secret key (empty when it is): the
/// API server's `IsConfigMapKey` messages.
pub fn config_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(KEY_MESSAGE.to_string());
    }
    if key == "." {
        errs.push("must not be '.'".to_string());
    } else if key == ".." {
        errs.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `metadata.name` errors of an object named `name` (a DNS subdomain).
pub(crate) fn name_errors(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("metadata.name: Required value: name or generateName is required".into());
    }
    let ok = name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    (!ok).then(|| format!("metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
}

/// `{field}[{key}]: Invalid value: "{key}": ...` for every bad key.
pub(crate) fn key_errors<'a>(
    field: &str,
    keys: impl Iterator<Item = &'a String>,
    errs: &mut Vec<String>,
) {
    for k in keys {
        for e in config_key_errors(k) {
            errs.push(format!("{field}[{k}]: Invalid value: {k:?}: {e}"));
        }
    }
}

/// One error, or several in brackets, after `Kind "name" is invalid: `.
pub(crate) fn invalid(kind: &str, name: &str, errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(format!("{kind} {name:?} is invalid: {}", errs[0])),
        _ => Err(format!("{kind} {name:?} is invalid: [{}]", errs.join(", "))),
    }
}

/// Apply the API server's defaults: the namespace.
pub fn default_config_map(c: &mut ConfigMap) {
    if c.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        c.metadata.namespace = Some(crate::DEFAULT_NAMESPACE.to_string());
    }
}

/// Validate a ConfigMap; the error reads like the API server's
/// (`ConfigMap "app" is invalid: data[a b]: Invalid value: ...`).
pub fn validate_config_map(c: &ConfigMap) -> Result<(), String> {
    let name = c.metadata.name.clone().unwrap_or_default();
    let mut errs: Vec<String> = name_errors(&name).into_iter().collect();
    key_errors("data", c.data.iter().flat_map(|d| d.keys()), &mut errs);
    key_errors(
        "binaryData",
        c.binary_data.iter().flat_map(|d| d.keys()),
        &mut errs,
    );
    let mut size = 0;
    for (k, v) in c.data.iter().flatten() {
        size += k.len() + v.len();
    }
    for (k, v) in c.binary_data.iter().flatten() {
        size += k.len() + v.0.len();
        if c.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errs.push(format!(
                "binaryData[{k}]: Invalid value: {k:?}: duplicate of key present in data"
            ));
        }
    }
    if size > MAX_CONFIG_SIZE {
        errs.push(format!(
            "[]: Too long: may not be more than {MAX_CONFIG_SIZE} bytes"
        ));
    }
    invalid("ConfigMap", &name, errs)
}

/// Validate replacing `old` by `new`: an `immutable` ConfigMap keeps its
/// data, binaryData and immutable flag (the API server's
/// `ValidateConfigMapUpdate`).
pub fn validate_config_map_update(old: &ConfigMap, new: &ConfigMap) -> Result<(), String> {
    validate_config_map(new)?;
    let mut errs = Vec::new();
    immutable_errors(
        old.immutable,
        new.immutable,
        &[
            ("data", new.data != old.data),
            ("binaryData", new.binary_data != old.binary_data),
        ],
        &mut errs,
    );
    invalid(
        "ConfigMap",
        new.metadata.name.as_deref().unwrap_or_default(),
        errs,
    )
}

/// The API server's check of an update of an `immutable` ConfigMap or
/// Secret: the flag stays, and so does each of `changed` (field name,
/// whether the update changes it).
pub(crate) fn immutable_errors(
    old: Option<bool>,
    new: Option<bool>,
    changed: &[(&str, bool)],
    errs: &mut Vec<String>,
) {
    if old != Some(true) {
        return;
    }
    const MSG: &str = "Forbidden: field is immutable when `immutable` is set";
    if new != old {
        errs.push(format!("immutable: {MSG}"));
    }
    for (field, _) in changed.iter().filter(|(_, c)| *c) {
        errs.push(format!("{field}: {MSG}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(yaml: &str) -> ConfigMap {
        let mut c: ConfigMap = serde_yaml_ng::from_str(yaml).unwrap();
        default_config_map(&mut c);
        c
    }

    #[test]
    fn keys_as_the_api_server_checks_them() {
        for ok in [
            "a", "key.name", "KEY_NAME", "key-name", ".hidden", "a..b", "1",
        ] {
            assert!(config_key_errors(ok).is_empty(), "{ok}");
        }
        assert_eq!(config_key_errors("a b"), [KEY_MESSAGE]);
        assert_eq!(config_key_errors("a/b"), [KEY_MESSAGE]);
        assert_eq!(config_key_errors(""), [KEY_MESSAGE]);
        assert_eq!(config_key_errors("."), ["must not be '.'"]);
        assert_eq!(config_key_errors(".."), ["must not be '..'"]);
        assert_eq!(config_key_errors("..data"), ["must not start with '..'"]);
        assert_eq!(
            config_key_errors(&"a".repeat(254)),
            ["must be no more than 253 characters"]
        );
    }

    #[test]
    fn config_map_errors_name_the_object_and_field() {
        let ok = cm("metadata: {name: app}\ndata: {a: b}\nbinaryData: {c: aGk=}\n");
        assert_eq!(ok.metadata.namespace.as_deref(), Some("default"));
        validate_config_map(&ok).unwrap();
        let e = validate_config_map(&cm("metadata: {name: app}\ndata: {'a b': x}\n")).unwrap_err();
        assert!(
            e.starts_with("ConfigMap \"app\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key"),
            "{e}"
        );
        let e = validate_config_map(&cm(
            "metadata: {name: app}\ndata: {a: x}\nbinaryData: {a: eA==}\n",
        ))
        .unwrap_err();
        assert!(
            e.contains("binaryData[a]: Invalid value: \"a\": duplicate of key present in data"),
            "{e}"
        );
        let e = validate_config_map(&cm("metadata: {name: App}\n")).unwrap_err();
        assert!(e.contains("metadata.name: Invalid value: \"App\""), "{e}");
    }

    #[test]
    fn immutable_config_map_keeps_its_data() {
        let old = cm("metadata: {name: app}\ndata: {a: b}\nimmutable: true\n");
        let new = cm("metadata: {name: app}\ndata: {a: c}\nimmutable: true\n");
        let e = validate_config_map_update(&old, &new).unwrap_err();
        assert_eq!(
            e,
            "ConfigMap \"app\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        validate_config_map_update(&old, &old.clone()).unwrap();
        let mutable = cm("metadata: {name: app}\ndata: {a: b}\n");
        validate_config_map_update(&mutable, &new).unwrap();
    }
}
