//! Profit CSV export source (being written).
