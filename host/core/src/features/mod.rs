//! The native v3 feature core (being written).
