//! Market-data sources.
