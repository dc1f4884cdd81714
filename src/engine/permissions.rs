//! TODO: permissions
