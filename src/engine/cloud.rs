//! TODO: cloud
