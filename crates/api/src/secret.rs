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

/// Validate a (defaulted) Secret; the error reads like the API server's.
/// Values never appear in it.
pub fn validate_secret(s: &Secret) -> Result<(), String> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let mut errs: Vec<String> = crate::configmap::name_errors(&name).into_iter().collect();
    crate::configmap::key_errors("data", s.data.iter().flat_map(|d| d.keys()), &mut errs);
    let size: usize = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum();
    if size > crate::configmap::MAX_CONFIG_SIZE {
        errs.push(format!(
            "data: Too long: may not be more than {} bytes",
            crate::configmap::MAX_CONFIG_SIZE
        ));
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
    crate::configmap::invalid("Secret", &name, errs)
}

/// Validate replacing `old` by `new`: the type never changes; an
/// `immutable` Secret keeps its data and flag (`ValidateSecretUpdate`).
pub fn validate_secret_update(old: &Secret, new: &Secret) -> Result<(), String> {
    validate_secret(new)?;
    let mut errs = Vec::new();
    if new.type_ != old.type_ {
        errs.push(format!(
            "type: Invalid value: {:?}: field is immutable",
            new.type_.as_deref().unwrap_or_default()
        ));
    }
    crate::configmap::immutable_errors(
        old.immutable,
        new.immutable,
        &[("data", new.data != old.data)],
        &mut errs,
    );
    crate::configmap::invalid(
        "Secret",
        new.metadata.name.as_deref().unwrap_or_default(),
        errs,
    )
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

    #[test]
    fn generic_secret_keys_type_and_immutable() {
        let s = secret("metadata: {name: db}\nstringData: {'pass word': hunter2}\n");
        let e = validate_secret(&s).unwrap_err();
        assert!(
            e.starts_with(
                "Secret \"db\" is invalid: data[pass word]: Invalid value: \"pass word\""
            ),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let old = secret("metadata: {name: db}\nstringData: {pass: a}\nimmutable: true\n");
        let new = secret("metadata: {name: db}\nstringData: {pass: b}\nimmutable: true\n");
        assert!(validate_secret_update(&old, &new)
            .unwrap_err()
            .contains("data: Forbidden: field is immutable when `immutable` is set"));
        let tls = secret("metadata: {name: db}\ntype: kubernetes.io/tls\nstringData: {pass: a}\n");
        let opaque = secret("metadata: {name: db}\nstringData: {pass: a}\n");
        assert!(validate_secret_update(&opaque, &tls)
            .unwrap_err()
            .contains("type: Invalid value: \"kubernetes.io/tls\": field is immutable"));
    }
}
