//! Pods from a PodTemplateSpec, created as the API server creates a pod
//! with `generateName` (`<owner>-<5 random characters>`), defaulted and
//! validated by the `api` crate, then admitted and started as `apply`
//! does (`server::pods::store_new_pod`).

use crate::node::Node;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The API server's alphabet for generated names (no vowels, no
/// look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Longest name a generated name may have.
const MAX_NAME: usize = 63;

/// Five random characters of the API server's alphabet.
pub fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// `generateName` + 5 random characters, the prefix cut so the whole fits
/// in 63 characters, as the API server's `SimpleNameGenerator`.
pub fn generate_name(prefix: &str) -> String {
    let max = MAX_NAME - 5;
    let p = if prefix.len() > max {
        &prefix[..max]
    } else {
        prefix
    };
    format!("{p}{}", random_suffix())
}

/// What a controller adds to the template's pod.
#[derive(Default, Clone)]
pub struct PodExtras {
    /// Labels added to the template's (e.g. pod-template-hash).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// A fixed name (StatefulSet pods); else `generateName` of
    /// `generate_prefix`.
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
}

/// Create a pod of `template` in `namespace`, controlled by `owner`
/// (`generateName` `<prefix>`), with `extras`. The error names the owner
/// and what is wrong.
pub fn create_pod(
    node: &Arc<Node>,
    namespace: &str,
    generate_prefix: &str,
    template: &PodTemplateSpec,
    owner: &OwnerReference,
    extras: &PodExtras,
) -> Result<Pod, String> {
    let who = format!("{} {namespace}/{}", owner.kind, owner.name);
    match node
        .store
        .get::<Namespace>(&format!("namespaces/{namespace}"))
    {
        Ok(Some(n)) if n.metadata.deletion_timestamp.is_some() => {
            return Err(format!(
                "{who}: creating a pod: namespace {namespace} is being terminated"
            ))
        }
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "{who}: creating a pod: namespace {namespace} not found"
            ))
        }
        Err(e) => return Err(format!("{who}: {e}")),
    }
    let mut pod = peapod_api::pod_from_template(template);
    pod.metadata.namespace = Some(namespace.to_string());
    pod.metadata.owner_references = Some(vec![owner.clone()]);
    if !extras.labels.is_empty() {
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(extras.labels.clone());
    }
    if !extras.annotations.is_empty() {
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .extend(extras.annotations.clone());
    }
    if let Some(spec) = pod.spec.as_mut() {
        if extras.hostname.is_some() {
            spec.hostname = extras.hostname.clone();
        }
        if extras.subdomain.is_some() {
            spec.subdomain = extras.subdomain.clone();
        }
    }
    peapod_api::default_pod(&mut pod);
    let mut last = String::new();
    // A generated name may be taken: try a few.
    for _ in 0..5 {
        let name = match &extras.name {
            Some(n) => n.clone(),
            None => generate_name(generate_prefix),
        };
        pod.metadata.name = Some(name.clone());
        pod.metadata.generate_name = extras.name.is_none().then(|| generate_prefix.to_string());
        if let Err(e) = peapod_api::validate_pod(&pod) {
            return Err(format!("{who}: its pod template is invalid: {e}"));
        }
        match crate::server::store_new_pod(node, pod.clone()) {
            Ok(p) => return Ok(p),
            Err(e @ crate::store::StoreError::AlreadyExists { .. }) if extras.name.is_none() => {
                last = e.to_string()
            }
            Err(e) => return Err(format!("{who}: creating pod {name}: {e}")),
        }
    }
    Err(format!("{who}: creating a pod: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_the_prefix_and_five_safe_characters() {
        let n = generate_name("web-7d4b9c-");
        assert_eq!(n.len(), "web-7d4b9c-".len() + 5);
        assert!(n.starts_with("web-7d4b9c-"));
        assert!(n[11..].bytes().all(|b| ALPHABET.contains(&b)), "{n}");
        let long = generate_name(&"x".repeat(80));
        assert_eq!(long.len(), 63);
        assert_ne!(generate_name("a-"), generate_name("a-"));
    }
}
