//! Table tests of the fold: events in, state or error out.
