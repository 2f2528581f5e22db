//! The durable event log (filled in next).
