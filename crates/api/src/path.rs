//! Kubernetes-style field paths: `spec.containers[0].resources.limits[cpu]`.

use std::fmt;

/// A field path, built up one step at a time the way Kubernetes'
/// `field.Path` is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// A path starting at `root` (e.g. `"spec"`).
    pub(crate) fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }

    /// The path to field `name` of this object.
    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// The path to element `index` of this list.
    pub(crate) fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path to entry `key` of this map.
    pub(crate) fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// True for the empty (document root) path.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_kubernetes_paths() {
        let p = FieldPath::new("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("limits")
            .key("cpu");
        assert_eq!(p.to_string(), "spec.containers[0].resources.limits[cpu]");
        assert_eq!(
            FieldPath::default().child("metadata").to_string(),
            "metadata"
        );
        assert!(FieldPath::default().is_root());
    }
}
