//! peapod-node
