//! TODO: properties
