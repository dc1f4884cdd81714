//! TODO: provision
