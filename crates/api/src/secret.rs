//! Secrets: defaulting (`stringData` folded into `data`, as the API server
//! does on write) and validation, including the `kubernetes.io/dockerconfigjson`
//! type used by `imagePullSecrets`.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";

/// Apply the API server's defaults: namespace, type `Opaque`, `stringData`
/// merged into `data`.
pub fn default_secret(s: &mut Secret) {
    if s.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        s.metadata.namespace = Some(crate::DEFAULT_NAMESPACE.to_string());
    }
    if s.type_.as_deref().unwrap_or("").is_empty() {
        s.type_ = Some("Opaque".into());
    }
    if let Some(sd) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in sd {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Validate a (defaulted) Secret; the error reads like the API server's.
pub fn validate_secret(s: &Secret) -> Result<(), String> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("metadata.name: Required value: name or generateName is required".to_string());
    } else if !valid_name(&name) {
        errs.push(format!("metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
    }
    for k in s.data.iter().flat_map(|d| d.keys()) {
        if !valid_key(k) {
            errs.push(format!("data[{k}]: Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
        }
    }
    if s.type_.as_deref() == Some(DOCKER_CONFIG_JSON_TYPE) {
        match s.data.as_ref().and_then(|d| d.get(DOCKER_CONFIG_JSON_KEY)) {
            None => errs.push(format!("data[{DOCKER_CONFIG_JSON_KEY}]: Required value")),
            Some(v) => match serde_json::from_slice::<serde_json::Value>(&v.0) {
                Ok(j) if j.get("auths").map(|a| a.is_object()).unwrap_or(false) => {}
                Ok(_) => errs.push(format!("data[{DOCKER_CONFIG_JSON_KEY}]: Invalid value: \"<secret contents redacted>\": must have an \"auths\" object")),
                Err(e) => errs.push(format!("data[{DOCKER_CONFIG_JSON_KEY}]: Invalid value: \"<secret contents redacted>\": {e}")),
            },
        }
    }
    match errs.len() {
        0 => Ok(()),
        1 => Err(format!("Secret {name:?} is invalid: {}", errs[0])),
        _ => Err(format!("Secret {name:?} is invalid: [{}]", errs.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(yaml: &str) -> Secret {
        let mut s: Secret = serde_yaml_ng::from_str(yaml).unwrap();
        default_secret(&mut s);
        s
    }

    #[test]
    fn docker_config_json() {
        let ok = secret("metadata: {name: regcred}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"dTpw\"}}}'\n");
        assert_eq!(ok.metadata.namespace.as_deref(), Some("default"));
        assert!(ok.data.as_ref().unwrap().contains_key(".dockerconfigjson"));
        validate_secret(&ok).unwrap();
        let missing = secret("metadata: {name: regcred}\ntype: kubernetes.io/dockerconfigjson\n");
        assert!(validate_secret(&missing)
            .unwrap_err()
            .contains("data[.dockerconfigjson]: Required value"));
        let bad = secret("metadata: {name: Bad}\n");
        assert!(validate_secret(&bad).unwrap_err().contains("metadata.name"));
    }
}
