//! Time-travel features (see domain.md).
