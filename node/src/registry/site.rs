//! Service sites (being written).
