//! Teams and organisations (being written).
