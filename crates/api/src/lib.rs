//! peapod-api: Kubernetes objects as peapod accepts them.
//!
//! A manifest goes through four steps before peapod stores it:
//!
//! 1. [`decode`]: multi-document YAML or JSON into typed objects
//!    ([`k8s_openapi`] types), with warnings for unknown fields;
//! 2. [`default_pod`]: the defaults the Kubernetes API server fills in;
//! 3. [`validate_pod`]: every error, each with its field path, in
//!    Kubernetes' words;
//! 4. [`unsupported_fields`]: warnings for the fields peapod accepts but does
//!    not honour yet, so that nothing is ignored silently.
//!
//! ```
//! let decoded = peapod_api::decode(
//!     "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n\
//!      spec: {containers: [{name: web, image: nginx}]}\n",
//! )?;
//! for object in decoded.objects {
//!     if let peapod_api::Object::Pod(mut pod) = object {
//!         peapod_api::default_pod(&mut pod);
//!         peapod_api::validate_pod(&pod)?;
//!         assert!(peapod_api::unsupported_fields(&pod).is_empty());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod configmap;
mod decode;
mod defaults;
mod path;
mod quantity;
mod secret;
pub mod selector;
mod service;
mod unsupported;
mod validate;
pub mod workloads;

pub use configmap::{
    config_key_errors, default_config_map, validate_config_map, validate_config_map_update,
    MAX_CONFIG_SIZE,
};
pub use decode::{decode, DecodeError, Decoded, Object, Resource};
pub use defaults::{
    default_pod, DEFAULT_NAMESPACE, DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
    DEFAULT_TERMINATION_MESSAGE_PATH,
};
pub use k8s_openapi::api::core::v1::Pod;
pub use quantity::{parse_quantity, Quantity};
pub use secret::{
    default_secret, validate_secret, validate_secret_update, DOCKER_CONFIG_JSON_KEY,
    DOCKER_CONFIG_JSON_TYPE,
};
pub use selector::{parse_field_selector, parse_label_selector, FieldSelector, LabelSelector};
pub use service::{
    default_service, has_cluster_ip, validate_service, validate_service_update, NODE_PORT_RANGE,
};
pub use unsupported::{unsupported_fields, unsupported_template_fields};
pub use validate::{pod_template_spec_errors, validate_pod, FieldError, ValidationErrors};
pub use workloads::{
    default_deployment, default_pod_template, default_replica_set, find_kind, kind_named,
    pod_from_template, scaled_value, validate_deployment, validate_deployment_update,
    validate_replica_set, validate_replica_set_update, Kind, KINDS,
};
