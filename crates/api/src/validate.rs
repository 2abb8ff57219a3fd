//! Pod validation, modelled on the Kubernetes API server's
//! (`pkg/apis/core/validation`).
//!
//! Every problem is collected (validation never stops at the first one) and
//! reported with its field path, in the same words Kubernetes uses:
//!
//! ```text
//! spec.containers[1].name: Duplicate value: "web"
//! spec.containers[0].image: Required value
//! spec.containers[0].volumeMounts[0].name: Not found: "data"
//! ```
//!
//! Validation is meant to run on a defaulted pod (see
//! [`default_pod`](crate::default_pod)), but it accepts an undefaulted one:
//! fields that defaulting would fill in are only checked when present.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::path::FieldPath;
use crate::quantity::{parse_quantity, Quantity};

/// One validation problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// What is wrong, in Kubernetes' words, e.g. `Required value` or
    /// `Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain ...`.
    pub message: String,
}

impl FieldError {
    fn new(field: &FieldPath, message: String) -> Self {
        FieldError {
            field: field.to_string(),
            message,
        }
    }

    /// `Required value` (with an optional explanation).
    fn required(field: &FieldPath, detail: &str) -> Self {
        if detail.is_empty() {
            Self::new(field, "Required value".to_string())
        } else {
            Self::new(field, format!("Required value: {detail}"))
        }
    }

    /// `Invalid value: VALUE: DETAIL`; `value` is already formatted (see [`quote`]).
    fn invalid(field: &FieldPath, value: impl fmt::Display, detail: &str) -> Self {
        Self::new(field, format!("Invalid value: {value}: {detail}"))
    }

    /// `Duplicate value: "VALUE"`.
    fn duplicate(field: &FieldPath, value: &str) -> Self {
        Self::new(field, format!("Duplicate value: {}", quote(value)))
    }

    /// `Not found: "VALUE"`.
    fn not_found(field: &FieldPath, value: &str) -> Self {
        Self::new(field, format!("Not found: {}", quote(value)))
    }

    /// `Unsupported value: "VALUE": supported values: "A", "B"`.
    fn not_supported(field: &FieldPath, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        Self::new(
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                list.join(", ")
            ),
        )
    }

    /// `Forbidden: DETAIL`.
    fn forbidden(field: &FieldPath, detail: &str) -> Self {
        Self::new(field, format!("Forbidden: {detail}"))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the problems found in one pod.
///
/// Displays like the Kubernetes API server's (and so kubectl's) message:
/// `Pod "web" is invalid: spec.containers[0].image: Required value` for one
/// error and `Pod "web" is invalid: [err1, err2]` for several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The pod's `metadata.name` (possibly empty).
    pub name: String,
    /// Every error found, in field order; never empty.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pod {} is invalid: ", quote(&self.name))?;
        match self.errors.as_slice() {
            [only] => write!(f, "{only}"),
            errors => {
                let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", all.join(", "))
            }
        }
    }
}

impl std::error::Error for ValidationErrors {}

/// Validates a pod as the Kubernetes API server does, returning every error.
/// The errors of a pod template's spec (`spec.template.spec` of a
/// Deployment, ReplicaSet, Job, ...), each as `FIELD: MESSAGE` with `root`
/// as the path's start.
pub fn pod_template_spec_errors(spec: &PodSpec, root: &str) -> Vec<String> {
    let mut errs = Vec::new();
    validate_spec(spec, &FieldPath::new(root), &mut errs);
    errs.iter().map(ToString::to_string).collect()
}

pub fn validate_pod(pod: &Pod) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    validate_metadata(&pod.metadata, &FieldPath::new("metadata"), &mut errs);
    match &pod.spec {
        Some(spec) => validate_spec(spec, &FieldPath::new("spec"), &mut errs),
        None => errs.push(FieldError::required(&FieldPath::new("spec"), "")),
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors {
            name: pod.metadata.name.clone().unwrap_or_default(),
            errors: errs,
        })
    }
}

// ---------------------------------------------------------------------------
// Value formatting and name rules
// ---------------------------------------------------------------------------

/// Quotes a string the way Go's `%q` does (close enough for messages).
fn quote(s: &str) -> String {
    format!("{s:?}")
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
    characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without the length limit.
fn is_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// The problems with `s` as an RFC 1123 label (empty when valid).
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        msgs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !is_label_shaped(s) {
        msgs.push(LABEL_ERR.to_string());
    }
    msgs
}

/// The problems with `s` as an RFC 1123 subdomain (empty when valid).
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        msgs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_label_shaped) {
        msgs.push(SUBDOMAIN_ERR.to_string());
    }
    msgs
}

/// The problems with `s` as an IANA service name (a port name).
pub(crate) fn iana_svc_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 15 {
        msgs.push(max_len_error(15));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        msgs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        msgs.push("must not contain consecutive hyphens".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        msgs.push("must not begin or end with a hyphen".into());
    }
    msgs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: a label value or the name part
/// of a qualified name.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// The problems with `s` as a qualified name (`[prefix/]name`, a label or
/// annotation key).
fn qualified_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    let name = match s.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() {
                msgs.push("prefix part must be non-empty".to_string());
            } else {
                msgs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        None => s,
    };
    if name.is_empty() {
        msgs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > DNS1123_LABEL_MAX {
            msgs.push(format!("name part {}", max_len_error(DNS1123_LABEL_MAX)));
        }
        if !is_qualified_name_part(name) {
            msgs.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character"
                    .to_string(),
            );
        }
    }
    msgs
}

/// The problems with `s` as a label value.
fn label_value(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        msgs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        msgs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character"
                .to_string(),
        );
    }
    msgs
}

/// Kubernetes (with relaxed validation, the default since 1.34) accepts any
/// printable ASCII character except `=` in an environment variable name.
fn env_var_name(s: &str) -> Vec<String> {
    if s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        Vec::new()
    } else {
        vec![
            "a valid environment variable name must consist only of printable ASCII \
              characters other than '='"
                .to_string(),
        ]
    }
}

/// Pushes one `Invalid value` error per message.
fn push_invalid(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str, msgs: Vec<String>) {
    errs.extend(
        msgs.iter()
            .map(|m| FieldError::invalid(path, quote(value), m)),
    );
}

/// Checks an enum-like string field: `Required` when empty, `Unsupported`
/// when not one of `supported`. Absent (`None`) is accepted.
fn check_enum(
    errs: &mut Vec<FieldError>,
    path: &FieldPath,
    value: Option<&String>,
    supported: &[&str],
) {
    match value {
        None => {}
        Some(v) if v.is_empty() => errs.push(FieldError::required(path, "")),
        Some(v) if !supported.contains(&v.as_str()) => {
            errs.push(FieldError::not_supported(path, v, supported))
        }
        Some(_) => {}
    }
}

/// Checks a path that must be absolute and free of `..` components.
fn check_absolute_path(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    if !value.starts_with('/') {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            "must be an absolute path",
        ));
    }
    if has_backsteps(value) {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            "must not contain '..'",
        ));
    }
}

/// Checks a path that must be relative and stay below its base (`subPath`,
/// `items[*].path`).
fn check_local_descending_path(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str) {
    if value.starts_with('/') {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            "must be a relative path",
        ));
    }
    if has_backsteps(value) {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            "must not contain '..'",
        ));
    }
}

fn has_backsteps(p: &str) -> bool {
    p.split('/').any(|part| part == "..")
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

fn validate_metadata(meta: &ObjectMeta, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let name_path = path.child("name");
    match meta.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(&name_path, "name is required")),
        Some(name) => push_invalid(errs, &name_path, name, dns1123_subdomain(name)),
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        push_invalid(errs, &path.child("namespace"), ns, dns1123_label(ns));
    }
    if let Some(labels) = &meta.labels {
        let labels_path = path.child("labels");
        for (key, value) in labels {
            push_invalid(errs, &labels_path, key, qualified_name(key));
            push_invalid(errs, &labels_path, value, label_value(value));
        }
    }
    if let Some(annotations) = &meta.annotations {
        let annotations_path = path.child("annotations");
        for key in annotations.keys() {
            // Kubernetes checks annotation keys case-insensitively.
            push_invalid(
                errs,
                &annotations_path,
                key,
                qualified_name(&key.to_lowercase()),
            );
        }
        let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        const MAX_ANNOTATIONS: usize = 256 * 1024;
        if total > MAX_ANNOTATIONS {
            errs.push(FieldError::new(
                &annotations_path,
                format!("Too long: may not be more than {MAX_ANNOTATIONS} bytes"),
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Pod spec
// ---------------------------------------------------------------------------

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

fn validate_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.child("volumes"),
        errs,
    );

    // Container names are unique across init and app containers.
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    let init_path = path.child("initContainers");
    for (i, c) in init.iter().enumerate() {
        validate_container(c, &init_path.index(i), true, &volumes, &mut names, errs);
    }
    let containers_path = path.child("containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(
            c,
            &containers_path.index(i),
            false,
            &volumes,
            &mut names,
            errs,
        );
    }

    check_enum(
        errs,
        &path.child("restartPolicy"),
        spec.restart_policy.as_ref(),
        RESTART_POLICIES,
    );
    check_enum(
        errs,
        &path.child("dnsPolicy"),
        spec.dns_policy.as_ref(),
        DNS_POLICIES,
    );
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        errs.push(FieldError::required(
            &path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }

    validate_dns(spec, path, errs);

    if spec.host_pid == Some(true) && spec.share_process_namespace == Some(true) {
        errs.push(FieldError::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }

    if let Some(grace) = spec.termination_grace_period_seconds {
        if grace < 0 {
            errs.push(FieldError::invalid(
                &path.child("terminationGracePeriodSeconds"),
                grace,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&deadline) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                deadline,
                &format!("must be between 1 and {}, inclusive", i32::MAX),
            ));
        }
    }

    if let Some(sc) = &spec.security_context {
        validate_pod_security_context(sc, &path.child("securityContext"), errs);
    }
}

/// `dnsConfig`, `hostAliases`, `hostname` and `subdomain`, as the API
/// server's validateDNSPolicy/validatePodDNSConfig/ValidateHostAliases.
fn validate_dns(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(cfg) = &spec.dns_config {
        let p = path.child("dnsConfig");
        let servers = cfg.nameservers.as_deref().unwrap_or_default();
        if servers.len() > 3 {
            errs.push(FieldError::invalid(
                &p.child("nameservers"),
                quote(&servers.join(",")),
                "must not have more than 3 nameservers",
            ));
        }
        if spec.dns_policy.as_deref() == Some("None") && servers.is_empty() {
            errs.push(FieldError::required(
                &p.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
        for (i, ns) in servers.iter().enumerate() {
            if ns.parse::<std::net::IpAddr>().is_err() {
                errs.push(FieldError::invalid(
                    &p.child("nameservers").index(i),
                    quote(ns),
                    "must be a valid IP address",
                ));
            }
        }
        let searches = cfg.searches.as_deref().unwrap_or_default();
        if searches.len() > 32 {
            errs.push(FieldError::invalid(
                &p.child("searches"),
                quote(&searches.join(",")),
                "must not have more than 32 search paths",
            ));
        }
        if searches.join(" ").len() > 2048 {
            errs.push(FieldError::invalid(
                &p.child("searches"),
                quote(&searches.join(",")),
                "must not have more than 2048 characters (including spaces) in the search list",
            ));
        }
        for (i, s) in searches.iter().enumerate() {
            // A trailing dot is allowed, as "." alone.
            let name = s.strip_suffix('.').unwrap_or(s);
            if s == "." {
                continue;
            }
            for m in dns1123_subdomain(name) {
                errs.push(FieldError::invalid(
                    &p.child("searches").index(i),
                    quote(s),
                    &m,
                ));
            }
        }
        for (i, o) in cfg.options.iter().flatten().enumerate() {
            if o.name.as_deref().unwrap_or_default().is_empty() {
                errs.push(FieldError::required(
                    &p.child("options").index(i).child("name"),
                    "Must not be empty",
                ));
            }
        }
    }
    for (i, a) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                &p.child("ip"),
                quote(&a.ip),
                "must be a valid IP address",
            ));
        }
        for (j, h) in a.hostnames.iter().flatten().enumerate() {
            for m in dns1123_subdomain(h) {
                errs.push(FieldError::invalid(
                    &p.child("hostnames").index(j),
                    quote(h),
                    &m,
                ));
            }
        }
    }
    for (field, v) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            for m in dns1123_label(v) {
                errs.push(FieldError::invalid(&path.child(field), quote(v), &m));
            }
        }
    }
}

fn validate_pod_security_context(
    sc: &PodSecurityContext,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    check_id(errs, &path.child("runAsUser"), sc.run_as_user);
    check_id(errs, &path.child("runAsGroup"), sc.run_as_group);
    check_id(errs, &path.child("fsGroup"), sc.fs_group);
    for (i, gid) in sc.supplemental_groups.iter().flatten().enumerate() {
        check_id(errs, &path.child("supplementalGroups").index(i), Some(*gid));
    }
}

/// A user or group id must be in `0..=2147483647`.
fn check_id(errs: &mut Vec<FieldError>, path: &FieldPath, id: Option<i64>) {
    if let Some(id) = id {
        if !(0..=i64::from(i32::MAX)).contains(&id) {
            errs.push(FieldError::invalid(
                path,
                id,
                &format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------

/// Volume sources peapod can run (or at least accept).
const SUPPORTED_SOURCES: &str =
    "emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim";
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];
const EMPTY_DIR_MEDIA: &[&str] = &["", "Memory"];

/// The JSON names of the sources set on a volume, in field order.
pub(crate) fn volume_sources(v: &Volume) -> Vec<&'static str> {
    let set = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("configMap", v.config_map.is_some()),
        ("csi", v.csi.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("secret", v.secret.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    set.iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

/// Validates the volumes and returns the set of declared names.
fn validate_volumes(
    volumes: &[Volume],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vpath = path.index(i);
        let name_path = vpath.child("name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            push_invalid(errs, &name_path, &v.name, dns1123_label(&v.name));
            if !names.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(&name_path, &v.name));
            }
        }
        validate_volume_source(v, &vpath, errs);
    }
    names
}

fn validate_volume_source(v: &Volume, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let sources = volume_sources(v);
    match sources.as_slice() {
        [] => {
            errs.push(FieldError::required(path, "must specify a volume type"));
            return;
        }
        [_] => {}
        [_, extra @ ..] => {
            for source in extra {
                errs.push(FieldError::forbidden(
                    &path.child(source),
                    "may not specify more than 1 volume type",
                ));
            }
            return;
        }
    }

    if let Some(host_path) = &v.host_path {
        let hp = path.child("hostPath");
        check_absolute_path(errs, &hp.child("path"), &host_path.path);
        if let Some(t) = &host_path.type_ {
            if !HOST_PATH_TYPES.contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    &hp.child("type"),
                    t,
                    HOST_PATH_TYPES,
                ));
            }
        }
    } else if let Some(empty_dir) = &v.empty_dir {
        let ed = path.child("emptyDir");
        if let Some(medium) = &empty_dir.medium {
            if !EMPTY_DIR_MEDIA.contains(&medium.as_str()) {
                errs.push(FieldError::not_supported(
                    &ed.child("medium"),
                    medium,
                    EMPTY_DIR_MEDIA,
                ));
            }
        }
        if let Some(limit) = &empty_dir.size_limit {
            check_quantity(errs, &ed.child("sizeLimit"), &limit.0);
        }
    } else if let Some(cm) = &v.config_map {
        let cpath = path.child("configMap");
        if cm.name.is_empty() {
            errs.push(FieldError::required(&cpath.child("name"), ""));
        }
        check_mode(errs, &cpath.child("defaultMode"), cm.default_mode);
        validate_key_to_paths(
            cm.items.as_deref().unwrap_or(&[]),
            &cpath.child("items"),
            errs,
        );
    } else if let Some(secret) = &v.secret {
        let spath = path.child("secret");
        if secret.secret_name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(&spath.child("secretName"), ""));
        }
        check_mode(errs, &spath.child("defaultMode"), secret.default_mode);
        validate_key_to_paths(
            secret.items.as_deref().unwrap_or(&[]),
            &spath.child("items"),
            errs,
        );
    } else if let Some(c) = &v.persistent_volume_claim {
        if c.claim_name.is_empty() {
            errs.push(FieldError::required(
                &path.child("persistentVolumeClaim").child("claimName"),
                "",
            ));
        }
    } else if let Some(d) = &v.downward_api {
        let dpath = path.child("downwardAPI");
        check_mode(errs, &dpath.child("defaultMode"), d.default_mode);
        validate_downward_items(
            d.items.as_deref().unwrap_or(&[]),
            &dpath.child("items"),
            errs,
        );
    } else if let Some(p) = &v.projected {
        let ppath = path.child("projected");
        check_mode(errs, &ppath.child("defaultMode"), p.default_mode);
        for (i, src) in p.sources.iter().flatten().enumerate() {
            let spath = ppath.child("sources").index(i);
            let set = [
                ("clusterTrustBundle", src.cluster_trust_bundle.is_some()),
                ("configMap", src.config_map.is_some()),
                ("downwardAPI", src.downward_api.is_some()),
                ("podCertificate", src.pod_certificate.is_some()),
                ("secret", src.secret.is_some()),
                ("serviceAccountToken", src.service_account_token.is_some()),
            ];
            let on: Vec<&str> = set.iter().filter(|(_, b)| *b).map(|(n, _)| *n).collect();
            if on.len() > 1 {
                for extra in &on[1..] {
                    errs.push(FieldError::forbidden(
                        &spath.child(extra),
                        "may not specify more than 1 volume type per source",
                    ));
                }
            }
            if let Some(cm) = &src.config_map {
                if cm.name.is_empty() {
                    errs.push(FieldError::required(
                        &spath.child("configMap").child("name"),
                        "",
                    ));
                }
                validate_key_to_paths(
                    cm.items.as_deref().unwrap_or(&[]),
                    &spath.child("configMap").child("items"),
                    errs,
                );
            }
            if let Some(sec) = &src.secret {
                if sec.name.is_empty() {
                    errs.push(FieldError::required(
                        &spath.child("secret").child("name"),
                        "",
                    ));
                }
                validate_key_to_paths(
                    sec.items.as_deref().unwrap_or(&[]),
                    &spath.child("secret").child("items"),
                    errs,
                );
            }
            if let Some(d) = &src.downward_api {
                validate_downward_items(
                    d.items.as_deref().unwrap_or(&[]),
                    &spath.child("downwardAPI").child("items"),
                    errs,
                );
            }
        }
    } else {
        errs.push(FieldError::new(
            path,
            format!("Unsupported value: volume source not supported yet; supported: {SUPPORTED_SOURCES}"),
        ));
    }
}

/// fieldRef paths a downwardAPI volume can project (besides
/// `metadata.labels['k']` and `metadata.annotations['k']`).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// fieldRef paths an env var can take (besides subscripted labels and
/// annotations).
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// resourceFieldRef resources.
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `metadata.labels['k']` / `metadata.annotations['k']`.
fn subscripted_field(p: &str) -> bool {
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .any(|pre| p.starts_with(pre) && p.ends_with("']") && p.len() > pre.len() + 2)
}

fn check_field_ref(errs: &mut Vec<FieldError>, path: &FieldPath, field: &str, allowed: &[&str]) {
    if field.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !allowed.contains(&field) && !subscripted_field(field) {
        errs.push(FieldError::not_supported(path, field, allowed));
    }
}

fn check_resource_field_ref(
    errs: &mut Vec<FieldError>,
    path: &FieldPath,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) {
    if r.resource.is_empty() {
        errs.push(FieldError::required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
        errs.push(FieldError::not_supported(
            &path.child("resource"),
            &r.resource,
            RESOURCE_FIELDS,
        ));
    }
    if let Some(d) = &r.divisor {
        if let Some(q) = check_quantity(errs, &path.child("divisor"), &d.0) {
            if q.as_millis() <= 0 {
                errs.push(FieldError::invalid(
                    &path.child("divisor"),
                    quote(&d.0),
                    "must be greater than 0",
                ));
            }
        }
    }
}

fn validate_downward_items(
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (i, item) in items.iter().enumerate() {
        let ipath = path.index(i);
        if item.path.is_empty() {
            errs.push(FieldError::required(&ipath.child("path"), ""));
        } else {
            check_local_descending_path(errs, &ipath.child("path"), &item.path);
        }
        check_mode(errs, &ipath.child("mode"), item.mode);
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => check_field_ref(
                errs,
                &ipath.child("fieldRef").child("fieldPath"),
                &f.field_path,
                VOLUME_FIELD_PATHS,
            ),
            (None, Some(r)) => {
                if r.container_name.as_deref().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(
                        &ipath.child("resourceFieldRef").child("containerName"),
                        "",
                    ));
                }
                check_resource_field_ref(errs, &ipath.child("resourceFieldRef"), r)
            }
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &ipath,
                quote("fieldRef and resourceFieldRef"),
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (None, None) => errs.push(FieldError::required(
                &ipath,
                "one of fieldRef and resourceFieldRef is required",
            )),
        }
    }
}

fn validate_key_to_paths(
    items: &[k8s_openapi::api::core::v1::KeyToPath],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (i, item) in items.iter().enumerate() {
        let ipath = path.index(i);
        if item.key.is_empty() {
            errs.push(FieldError::required(&ipath.child("key"), ""));
        }
        if item.path.is_empty() {
            errs.push(FieldError::required(&ipath.child("path"), ""));
        } else {
            check_local_descending_path(errs, &ipath.child("path"), &item.path);
        }
        check_mode(errs, &ipath.child("mode"), item.mode);
    }
}

/// A file mode must be within `0..=0o777`.
fn check_mode(errs: &mut Vec<FieldError>, path: &FieldPath, mode: Option<i32>) {
    if let Some(mode) = mode {
        if !(0..=0o777).contains(&mode) {
            errs.push(FieldError::invalid(
                path,
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const MOUNT_PROPAGATIONS: &[&str] = &["None", "HostToContainer", "Bidirectional"];

fn validate_container(
    c: &Container,
    path: &FieldPath,
    is_init: bool,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        push_invalid(errs, &name_path, &c.name, dns1123_label(&c.name));
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(&name_path, &c.name));
        }
    }

    let image_path = path.child("image");
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(&image_path, "")),
        Some(image) if image.trim() != image => errs.push(FieldError::invalid(
            &image_path,
            quote(image),
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }

    check_enum(
        errs,
        &path.child("imagePullPolicy"),
        c.image_pull_policy.as_ref(),
        PULL_POLICIES,
    );
    check_enum(
        errs,
        &path.child("terminationMessagePolicy"),
        c.termination_message_policy.as_ref(),
        TERMINATION_MESSAGE_POLICIES,
    );

    let restart_path = path.child("restartPolicy");
    let sidecar = c.restart_policy.as_deref() == Some("Always");
    match (&c.restart_policy, is_init) {
        (None, _) => {}
        (Some(_), true) => check_enum(errs, &restart_path, c.restart_policy.as_ref(), &["Always"]),
        (Some(_), false) => errs.push(FieldError::forbidden(
            &restart_path,
            "may only be set for init containers",
        )),
    }
    if is_init && !sidecar {
        // Plain init containers run to completion: probes and hooks make no sense.
        let forbidden = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ];
        for (field, set) in forbidden {
            if set {
                errs.push(FieldError::forbidden(
                    &path.child(field),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }

    validate_ports(
        c.ports.as_deref().unwrap_or(&[]),
        &path.child("ports"),
        errs,
    );
    validate_env(c.env.as_deref().unwrap_or(&[]), &path.child("env"), errs);
    validate_env_from(
        c.env_from.as_deref().unwrap_or(&[]),
        &path.child("envFrom"),
        errs,
    );
    if let Some(resources) = &c.resources {
        validate_resources(resources, &path.child("resources"), errs);
    }
    validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or(&[]),
        &path.child("volumeMounts"),
        volumes,
        errs,
    );
    if let Some(sc) = &c.security_context {
        validate_security_context(sc, &path.child("securityContext"), errs);
    }
}

fn validate_ports(ports: &[ContainerPort], path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ppath = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let name_path = ppath.child("name");
            push_invalid(errs, &name_path, name, iana_svc_name(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(&name_path, name));
            }
        }
        let cp_path = ppath.child("containerPort");
        if port.container_port == 0 {
            errs.push(FieldError::required(&cp_path, ""));
        } else {
            check_port_number(errs, &cp_path, port.container_port);
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            check_port_number(errs, &ppath.child("hostPort"), host_port);
        }
        check_enum(
            errs,
            &ppath.child("protocol"),
            port.protocol.as_ref(),
            PROTOCOLS,
        );
    }
}

fn check_port_number(errs: &mut Vec<FieldError>, path: &FieldPath, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            path,
            port,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

fn validate_env(env: &[EnvVar], path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, var) in env.iter().enumerate() {
        let epath = path.index(i);
        let name_path = epath.child("name");
        if var.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            push_invalid(errs, &name_path, &var.name, env_var_name(&var.name));
        }
        if var.value_from.is_some() && var.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                &epath.child("valueFrom"),
                quote(""),
                "may not be specified when `value` is not empty",
            ));
        }
        if let Some(from) = &var.value_from {
            let fpath = epath.child("valueFrom");
            let set = [
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.file_key_ref.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set == 0 {
                errs.push(FieldError::invalid(
                    &fpath,
                    quote(""),
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if set > 1 {
                errs.push(FieldError::invalid(
                    &fpath,
                    quote(""),
                    "may not have more than one field specified at a time",
                ));
            }
            if let Some(f) = &from.field_ref {
                check_field_ref(
                    errs,
                    &fpath.child("fieldRef").child("fieldPath"),
                    &f.field_path,
                    ENV_FIELD_PATHS,
                );
            }
            if let Some(r) = &from.resource_field_ref {
                check_resource_field_ref(errs, &fpath.child("resourceFieldRef"), r);
            }
            let key_refs = [
                (
                    "configMapKeyRef",
                    from.config_map_key_ref.as_ref().map(|r| (&r.name, &r.key)),
                ),
                (
                    "secretKeyRef",
                    from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)),
                ),
            ];
            for (field, r) in key_refs {
                let Some((name, key)) = r else { continue };
                let rpath = fpath.child(field);
                if name.is_empty() {
                    errs.push(FieldError::required(&rpath.child("name"), ""));
                }
                if key.is_empty() {
                    errs.push(FieldError::required(&rpath.child("key"), ""));
                } else {
                    push_invalid(
                        errs,
                        &rpath.child("key"),
                        key,
                        crate::config_key_errors(key),
                    );
                }
            }
        }
    }
}

fn validate_env_from(
    env_from: &[k8s_openapi::api::core::v1::EnvFromSource],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (i, e) in env_from.iter().enumerate() {
        let epath = path.index(i);
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(c), None) if c.name.is_empty() => errs.push(FieldError::required(
                &epath.child("configMapRef").child("name"),
                "",
            )),
            (None, Some(s)) if s.name.is_empty() => errs.push(FieldError::required(
                &epath.child("secretRef").child("name"),
                "",
            )),
            (Some(_), None) | (None, Some(_)) => {}
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &epath,
                quote(""),
                "may not have more than one field specified at a time",
            )),
            (None, None) => errs.push(FieldError::invalid(
                &epath,
                quote(""),
                "must specify one of: `configMapRef` or `secretRef`",
            )),
        }
        if let Some(p) = e.prefix.as_deref().filter(|p| !p.is_empty()) {
            push_invalid(errs, &epath.child("prefix"), p, env_var_name(p));
        }
    }
}

/// Parses a quantity, reporting an error at `path` if it is malformed or
/// negative.
fn check_quantity(errs: &mut Vec<FieldError>, path: &FieldPath, raw: &str) -> Option<Quantity> {
    match parse_quantity(raw) {
        Ok(q) if q.is_negative() => {
            errs.push(FieldError::invalid(
                path,
                quote(raw),
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(q) => Some(q),
        Err(reason) => {
            errs.push(FieldError::invalid(
                path,
                quote(raw),
                &format!("must be a valid quantity such as 250m, 0.5, 64Mi or 1G ({reason})"),
            ));
            None
        }
    }
}

/// Standard resource names, `hugepages-<size>`, or a domain-qualified
/// extended resource such as `example.com/gpu`.
fn is_valid_resource_name(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || (name.contains('/') && qualified_name(name).is_empty())
}

/// Parsed quantities of one resource list, by resource name, with the raw
/// text for messages.
type ParsedResources<'a> = BTreeMap<&'a str, (Quantity, &'a str)>;

/// Checks every entry of `resources.limits` or `resources.requests`.
fn check_resource_list<'a>(
    map: Option<&'a BTreeMap<String, K8sQuantity>>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> ParsedResources<'a> {
    let mut parsed = BTreeMap::new();
    for (name, quantity) in map.into_iter().flatten() {
        let kpath = path.key(name);
        if !is_valid_resource_name(name) {
            errs.push(FieldError::invalid(
                &kpath,
                quote(name),
                "must be a standard resource type (cpu, memory, ephemeral-storage, \
                 hugepages-<size>) or fully qualified (e.g. example.com/gpu)",
            ));
        }
        if let Some(q) = check_quantity(errs, &kpath, &quantity.0) {
            parsed.insert(name.as_str(), (q, quantity.0.as_str()));
        }
    }
    parsed
}

fn validate_resources(res: &ResourceRequirements, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let limits = check_resource_list(res.limits.as_ref(), &path.child("limits"), errs);
    let requests = check_resource_list(res.requests.as_ref(), &path.child("requests"), errs);

    for (name, (request, raw_request)) in &requests {
        if let Some((limit, raw_limit)) = limits.get(name) {
            if request > limit {
                errs.push(FieldError::invalid(
                    &path.child("requests").key(name),
                    quote(raw_request),
                    &format!("must be less than or equal to {name} limit of {raw_limit}"),
                ));
            }
        }
    }
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    path: &FieldPath,
    volumes: &HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let mut mount_paths = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let mpath = path.index(i);
        let name_path = mpath.child("name");
        if m.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(&name_path, &m.name));
        }

        let mount_path = mpath.child("mountPath");
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mount_path, ""));
        } else {
            if !m.mount_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &mount_path,
                    quote(&m.mount_path),
                    "must be an absolute path",
                ));
            }
            if !mount_paths.insert(m.mount_path.as_str()) {
                errs.push(FieldError::invalid(
                    &mount_path,
                    quote(&m.mount_path),
                    "must be unique",
                ));
            }
        }

        let sub_path = m.sub_path.as_deref().unwrap_or("");
        let sub_path_expr = m.sub_path_expr.as_deref().unwrap_or("");
        if !sub_path.is_empty() {
            check_local_descending_path(errs, &mpath.child("subPath"), sub_path);
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    &mpath.child("subPathExpr"),
                    quote(sub_path_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            check_local_descending_path(errs, &mpath.child("subPathExpr"), sub_path_expr);
        }
        check_enum(
            errs,
            &mpath.child("mountPropagation"),
            m.mount_propagation.as_ref(),
            MOUNT_PROPAGATIONS,
        );
    }
}

fn validate_security_context(sc: &SecurityContext, path: &FieldPath, errs: &mut Vec<FieldError>) {
    check_id(errs, &path.child("runAsUser"), sc.run_as_user);
    check_id(errs, &path.child("runAsGroup"), sc.run_as_group);
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        errs.push(FieldError::invalid(
            &path.child("allowPrivilegeEscalation"),
            false,
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A valid pod to mutate in tests.
    fn base() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{"name": "app", "image": "nginx:1.27"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        })
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    /// Validates and returns the rendered errors (`field: message`).
    fn errors(v: serde_json::Value) -> Vec<String> {
        match validate_pod(&pod(v)) {
            Ok(()) => Vec::new(),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Validates and returns only the field paths.
    fn fields(v: serde_json::Value) -> Vec<String> {
        match validate_pod(&pod(v)) {
            Ok(()) => Vec::new(),
            Err(e) => e.errors.into_iter().map(|e| e.field).collect(),
        }
    }

    /// Applies `f` to the base pod and returns the error fields.
    fn fields_with(f: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut v = base();
        f(&mut v);
        fields(v)
    }

    fn errors_with(f: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut v = base();
        f(&mut v);
        errors(v)
    }

    #[test]
    fn valid_pod_passes() {
        assert_eq!(errors(base()), Vec::<String>::new());
        let mut defaulted = pod(base());
        crate::default_pod(&mut defaulted);
        assert_eq!(validate_pod(&defaulted), Ok(()));
    }

    #[test]
    fn metadata_name() {
        assert_eq!(
            errors_with(|v| v["metadata"]["name"] = json!(null)),
            ["metadata.name: Required value: name is required"]
        );
        assert_eq!(
            errors_with(|v| v["metadata"]["name"] = json!("Bad_Name")),
            [
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must \
                 consist of lower case alphanumeric characters, '-' or '.', and must start and \
                 end with an alphanumeric character"
            ]
        );
        assert_eq!(
            fields_with(|v| v["metadata"]["name"] = json!("a.b-c.d")),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(|v| v["metadata"]["name"] = json!("a..b")),
            ["metadata.name"]
        );
        let long = "a".repeat(254);
        assert_eq!(
            errors_with(|v| v["metadata"]["name"] = json!(long)),
            [format!(
                "metadata.name: Invalid value: \"{long}\": must be no more than 253 characters"
            )]
        );
    }

    #[test]
    fn metadata_namespace_and_labels() {
        assert_eq!(
            fields_with(|v| v["metadata"]["namespace"] = json!("a.b")),
            ["metadata.namespace"]
        );
        assert_eq!(
            fields_with(|v| v["metadata"]["namespace"] = json!("")),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(
                |v| v["metadata"]["labels"] = json!({"app": "web", "example.com/tier": "x"})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(|v| v["metadata"]["labels"] = json!({"bad key": "bad value!"})),
            ["metadata.labels", "metadata.labels"]
        );
        assert_eq!(
            fields_with(|v| v["metadata"]["annotations"] = json!({"/x": "y"})),
            ["metadata.annotations"]
        );
    }

    #[test]
    fn missing_spec_and_containers() {
        assert_eq!(
            errors(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})),
            ["spec: Required value"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["containers"] = json!([])),
            ["spec.containers: Required value"]
        );
    }

    #[test]
    fn container_names() {
        assert_eq!(
            errors_with(|v| v["spec"]["containers"] = json!([
                {"name": "web", "image": "a"},
                {"name": "web", "image": "b"},
            ])),
            ["spec.containers[1].name: Duplicate value: \"web\""]
        );
        assert_eq!(
            fields_with(|v| {
                v["spec"]["initContainers"] = json!([{"name": "app", "image": "a"}]);
            }),
            ["spec.containers[0].name"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["containers"][0]["name"] = json!("")),
            ["spec.containers[0].name: Required value"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["name"] = json!("a.b")),
            ["spec.containers[0].name"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["name"] = json!("a".repeat(64))),
            ["spec.containers[0].name"]
        );
    }

    #[test]
    fn container_image() {
        assert_eq!(
            errors_with(|v| v["spec"]["containers"][0]["image"] = json!(null)),
            ["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["containers"][0]["image"] = json!("")),
            ["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["containers"][0]["image"] = json!(" nginx")),
            [
                "spec.containers[0].image: Invalid value: \" nginx\": must not have leading or \
              trailing whitespace"
            ]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["initContainers"] = json!([{"name": "init"}])),
            ["spec.initContainers[0].image"]
        );
    }

    #[test]
    fn container_enums() {
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["imagePullPolicy"] = json!("Sometimes")),
            ["spec.containers[0].imagePullPolicy"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["terminationMessagePolicy"] = json!("X")),
            ["spec.containers[0].terminationMessagePolicy"]
        );
    }

    #[test]
    fn volume_names() {
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"] = json!([
                {"name": "data", "emptyDir": {}},
                {"name": "data", "emptyDir": {}},
            ])),
            ["spec.volumes[1].name: Duplicate value: \"data\""]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"][0]["name"] = json!("Data")),
            ["spec.volumes[0].name"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"][0]["name"] = json!("")),
            ["spec.volumes[0].name: Required value"]
        );
    }

    #[test]
    fn volume_source_count() {
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"] = json!([{"name": "data"}])),
            ["spec.volumes[0]: Required value: must specify a volume type"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"] = json!([
                {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}
            ])),
            ["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]
        );
    }

    #[test]
    fn unsupported_volume_source() {
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"] = json!([
                {"name": "data", "nfs": {"server": "nfs", "path": "/export"}}
            ])),
            [
                "spec.volumes[0]: Unsupported value: volume source not supported yet; supported: \
              emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim"
            ]
        );
        let mut vol = json!({"nfs": {"server": "nfs", "path": "/export"}});
        vol["name"] = json!("data");
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"] = json!([vol])),
            ["spec.volumes[0]"]
        );
        for source in [
            json!({"configMap": {"name": "cm"}}),
            json!({"secret": {"secretName": "s"}}),
            json!({"projected": {"sources": [{"configMap": {"name": "cm"}}]}}),
            json!({"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.labels['a']"}}]}}),
            json!({"hostPath": {"path": "/srv"}}),
            json!({"persistentVolumeClaim": {"claimName": "c"}}),
            json!({"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}),
        ] {
            let mut vol = source;
            vol["name"] = json!("data");
            assert_eq!(
                fields_with(|v| v["spec"]["volumes"] = json!([vol])),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn host_path_volume() {
        assert_eq!(
            errors_with(
                |v| v["spec"]["volumes"][0] = json!({"name": "data", "hostPath": {"path": "srv"}})
            ),
            ["spec.volumes[0].hostPath.path: Invalid value: \"srv\": must be an absolute path"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"][0] =
                json!({"name": "data", "hostPath": {"path": "/a/../b"}})),
            ["spec.volumes[0].hostPath.path"]
        );
        assert_eq!(
            errors_with(|v| v["spec"]["volumes"][0] =
                json!({"name": "data", "hostPath": {"path": "/srv", "type": "Dir"}})),
            ["spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \
              \"DirectoryOrCreate\", \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \
              \"CharDevice\", \"BlockDevice\""]
        );
        for t in HOST_PATH_TYPES {
            assert_eq!(
                fields_with(|v| v["spec"]["volumes"][0] =
                    json!({"name": "data", "hostPath": {"path": "/srv", "type": t}})),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn empty_dir_volume() {
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"][0]["emptyDir"] = json!({"medium": "HugePages"})),
            ["spec.volumes[0].emptyDir.medium"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"][0]["emptyDir"] = json!({"sizeLimit": "lots"})),
            ["spec.volumes[0].emptyDir.sizeLimit"]
        );
    }

    #[test]
    fn config_map_and_secret_volumes() {
        assert_eq!(
            fields_with(
                |v| v["spec"]["volumes"][0] = json!({"name": "data", "configMap": {
                    "defaultMode": 1024,
                    "items": [{"key": "", "path": "../x"}],
                }})
            ),
            [
                "spec.volumes[0].configMap.name",
                "spec.volumes[0].configMap.defaultMode",
                "spec.volumes[0].configMap.items[0].key",
                "spec.volumes[0].configMap.items[0].path",
            ]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["volumes"][0] = json!({"name": "data", "secret": {}})),
            ["spec.volumes[0].secret.secretName"]
        );
    }

    #[test]
    fn volume_mounts() {
        let mount = |m: serde_json::Value| {
            move |v: &mut serde_json::Value| v["spec"]["containers"][0]["volumeMounts"] = m
        };
        assert_eq!(
            errors_with(mount(json!([{"name": "logs", "mountPath": "/logs"}]))),
            ["spec.containers[0].volumeMounts[0].name: Not found: \"logs\""]
        );
        assert_eq!(
            errors_with(mount(json!([{"name": "data", "mountPath": ""}]))),
            ["spec.containers[0].volumeMounts[0].mountPath: Required value"]
        );
        assert_eq!(
            fields_with(mount(json!([{"name": "data", "mountPath": "data"}]))),
            ["spec.containers[0].volumeMounts[0].mountPath"]
        );
        assert_eq!(
            errors_with(mount(json!([
                {"name": "data", "mountPath": "/data"},
                {"name": "data", "mountPath": "/data", "subPath": "x"},
            ]))),
            ["spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique"]
        );
        assert_eq!(
            errors_with(mount(json!([{"name": "data", "mountPath": "/d", "subPath": "/abs"}]))),
            ["spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/abs\": must be a relative path"]
        );
        assert_eq!(
            errors_with(mount(json!([{"name": "data", "mountPath": "/d", "subPath": "a/../../b"}]))),
            ["spec.containers[0].volumeMounts[0].subPath: Invalid value: \"a/../../b\": must not contain '..'"]
        );
        assert_eq!(
            fields_with(mount(
                json!([{"name": "data", "mountPath": "/d", "subPath": "a/..b/c"}])
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(mount(
                json!([{"name": "data", "mountPath": "/d", "mountPropagation": "Up"}])
            )),
            ["spec.containers[0].volumeMounts[0].mountPropagation"]
        );
        // The same path in two containers is fine.
        assert_eq!(
            fields_with(|v| v["spec"]["containers"] = json!([
                {"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
            ])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn restart_policy() {
        assert_eq!(
            errors_with(|v| v["spec"]["restartPolicy"] = json!("Sometimes")),
            ["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \
              \"OnFailure\", \"Never\""]
        );
        for p in RESTART_POLICIES {
            assert_eq!(
                fields_with(|v| v["spec"]["restartPolicy"] = json!(p)),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn container_restart_policy() {
        let init = |policy: &str| {
            let policy = policy.to_string();
            move |v: &mut serde_json::Value| {
                v["spec"]["initContainers"] =
                    json!([{"name": "init", "image": "x", "restartPolicy": policy}])
            }
        };
        assert_eq!(fields_with(init("Always")), Vec::<String>::new());
        assert_eq!(
            errors_with(init("Never")),
            [
                "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported \
              values: \"Always\""
            ]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["restartPolicy"] = json!("Always")),
            ["spec.containers[0].restartPolicy"]
        );
    }

    #[test]
    fn init_container_probes() {
        let probe = json!({"exec": {"command": ["true"]}});
        assert_eq!(
            fields_with(|v| v["spec"]["initContainers"] =
                json!([{"name": "init", "image": "x", "livenessProbe": probe}])),
            ["spec.initContainers[0].livenessProbe"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["initContainers"] = json!([
                {"name": "init", "image": "x", "restartPolicy": "Always", "livenessProbe": probe}
            ])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn host_pid_with_share_process_namespace() {
        assert_eq!(
            errors_with(|v| {
                v["spec"]["hostPID"] = json!(true);
                v["spec"]["shareProcessNamespace"] = json!(true);
            }),
            ["spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID \
              cannot both be enabled"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["hostPID"] = json!(true)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn env_value_from_and_env_from() {
        let env = |e: serde_json::Value| {
            move |v: &mut serde_json::Value| v["spec"]["containers"][0]["env"] = e
        };
        assert_eq!(
            errors_with(env(json!([{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}]))),
            ["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""]
        );
        assert_eq!(
            fields_with(env(json!([
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a b"}}},
                {"name": "B", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
                {"name": "C", "valueFrom": {}},
                {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['x']"}}},
            ]))),
            [
                "spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
                "spec.containers[0].env[1].valueFrom.resourceFieldRef.resource",
                "spec.containers[0].env[2].valueFrom",
            ]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["envFrom"] = json!([
                {"configMapRef": {"name": "c"}, "prefix": "OK_"},
                {},
                {"secretRef": {"name": "s"}, "prefix": "A=B"},
            ])),
            [
                "spec.containers[0].envFrom[1]",
                "spec.containers[0].envFrom[2].prefix"
            ]
        );
    }

    #[test]
    fn env_names() {
        let env = |e: serde_json::Value| {
            move |v: &mut serde_json::Value| v["spec"]["containers"][0]["env"] = e
        };
        assert_eq!(
            errors_with(env(json!([{"name": ""}]))),
            ["spec.containers[0].env[0].name: Required value"]
        );
        assert_eq!(
            fields_with(env(json!([{"name": "A=B"}, {"name": "tab\there"}]))),
            [
                "spec.containers[0].env[0].name",
                "spec.containers[0].env[1].name"
            ]
        );
        assert_eq!(
            fields_with(env(
                json!([{"name": "my.var-1 x", "value": "v"}, {"name": "_OK"}])
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(env(
                json!([{"name": "A", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
            )),
            ["spec.containers[0].env[0].valueFrom"]
        );
    }

    #[test]
    fn ports() {
        let ports = |p: serde_json::Value| {
            move |v: &mut serde_json::Value| v["spec"]["containers"][0]["ports"] = p
        };
        assert_eq!(
            errors_with(ports(json!([{"containerPort": 70000}]))),
            ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 \
              and 65535, inclusive"]
        );
        assert_eq!(
            errors_with(ports(json!([{"containerPort": 0}]))),
            ["spec.containers[0].ports[0].containerPort: Required value"]
        );
        assert_eq!(
            fields_with(ports(json!([{"containerPort": -1}]))),
            ["spec.containers[0].ports[0].containerPort"]
        );
        assert_eq!(
            errors_with(ports(json!([
                {"name": "http", "containerPort": 80},
                {"name": "http", "containerPort": 81},
            ]))),
            ["spec.containers[0].ports[1].name: Duplicate value: \"http\""]
        );
        assert_eq!(
            fields_with(ports(json!([{"name": "Http", "containerPort": 80}]))),
            ["spec.containers[0].ports[0].name"]
        );
        assert_eq!(
            errors_with(ports(json!([{"containerPort": 80, "protocol": "HTTP"}]))),
            [
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported \
              values: \"TCP\", \"UDP\", \"SCTP\""
            ]
        );
        assert_eq!(
            fields_with(ports(json!([{"containerPort": 80, "hostPort": 70000}]))),
            ["spec.containers[0].ports[0].hostPort"]
        );
        assert_eq!(
            fields_with(ports(json!([
                {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                {"containerPort": 9, "protocol": "SCTP"},
            ]))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn resources() {
        let res = |r: serde_json::Value| {
            move |v: &mut serde_json::Value| v["spec"]["containers"][0]["resources"] = r
        };
        assert_eq!(
            fields_with(res(json!({
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "500m", "memory": "1G"},
            }))),
            Vec::<String>::new()
        );
        assert_eq!(
            errors_with(res(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}))),
            ["spec.containers[0].resources.requests[cpu]: Invalid value: \"1500m\": must be less \
              than or equal to cpu limit of 1"]
        );
        assert_eq!(
            fields_with(res(
                json!({"limits": {"memory": "1G"}, "requests": {"memory": "1Gi"}})
            )),
            ["spec.containers[0].resources.requests[memory]"]
        );
        assert_eq!(
            fields_with(res(
                json!({"limits": {"cpu": "lots"}, "requests": {"memory": "-1"}})
            )),
            [
                "spec.containers[0].resources.limits[cpu]",
                "spec.containers[0].resources.requests[memory]",
            ]
        );
        assert_eq!(
            fields_with(res(
                json!({"limits": {"gpu": "1", "example.com/gpu": "1", "hugepages-2Mi": "2Mi"}})
            )),
            ["spec.containers[0].resources.limits[gpu]"]
        );
    }

    #[test]
    fn pod_level_numbers() {
        assert_eq!(
            errors_with(|v| v["spec"]["terminationGracePeriodSeconds"] = json!(-1)),
            ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["terminationGracePeriodSeconds"] = json!(0)),
            Vec::<String>::new()
        );
        assert_eq!(
            fields_with(|v| v["spec"]["activeDeadlineSeconds"] = json!(0)),
            ["spec.activeDeadlineSeconds"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["activeDeadlineSeconds"] = json!(10)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn security_context() {
        assert_eq!(
            errors_with(|v| v["spec"]["securityContext"] = json!({"runAsUser": -1})),
            [
                "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and \
              2147483647, inclusive"
            ]
        );
        assert_eq!(
            fields_with(
                |v| v["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": -5})
            ),
            ["spec.containers[0].securityContext.runAsUser"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn dns_policy() {
        assert_eq!(
            fields_with(|v| v["spec"]["dnsPolicy"] = json!("Cluster")),
            ["spec.dnsPolicy"]
        );
        assert_eq!(
            fields_with(|v| v["spec"]["dnsPolicy"] = json!("None")),
            ["spec.dnsConfig"]
        );
    }

    #[test]
    fn collects_all_errors_and_formats_like_kubectl() {
        let err = validate_pod(&pod(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"containers": [
                {"name": "web", "image": "nginx"},
                {"name": "web"},
            ]},
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"web\" is invalid: [spec.containers[1].name: Duplicate value: \"web\", \
             spec.containers[1].image: Required value]"
        );
        assert_eq!(err.errors.len(), 2);

        let single = validate_pod(&pod(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web"}]},
        })))
        .unwrap_err();
        assert_eq!(
            single.to_string(),
            "Pod \"web\" is invalid: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn name_helpers() {
        assert!(dns1123_label("a-1").is_empty());
        assert!(!dns1123_label("-a").is_empty());
        assert!(!dns1123_label("a-").is_empty());
        assert!(!dns1123_label("").is_empty());
        assert!(dns1123_subdomain("a.b.c").is_empty());
        assert!(!dns1123_subdomain("a.").is_empty());
        assert!(iana_svc_name("http-alt").is_empty());
        assert!(!iana_svc_name("8080").is_empty());
        assert!(!iana_svc_name("a--b").is_empty());
        assert!(!iana_svc_name("a-very-long-port-name").is_empty());
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
    }

    #[test]
    fn dns_fields_are_checked() {
        let mut v = base();
        v["spec"]["dnsPolicy"] = json!("None");
        v["spec"]["dnsConfig"] = json!({
            "nameservers": ["1.1.1.1", "x", "3.3.3.3", "4.4.4.4"],
            "searches": ["ok.example", "Bad_Domain"],
            "options": [{"value": "1"}],
        });
        v["spec"]["hostAliases"] = json!([{"ip": "300.1.1.1", "hostnames": ["good.local"]}]);
        v["spec"]["subdomain"] = json!("Web");
        assert_eq!(
            fields(v),
            [
                "spec.dnsConfig.nameservers",
                "spec.dnsConfig.nameservers[1]",
                "spec.dnsConfig.searches[1]",
                "spec.dnsConfig.options[0].name",
                "spec.hostAliases[0].ip",
                "spec.subdomain",
            ]
        );
        let mut v = base();
        v["spec"]["dnsPolicy"] = json!("None");
        v["spec"]["dnsConfig"] = json!({"searches": ["a.example"]});
        assert_eq!(
            errors(v),
            ["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"]
        );
    }
}
