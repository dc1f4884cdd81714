//! TODO: retry
