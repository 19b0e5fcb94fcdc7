//! Tests of the store against real redb files in temporary directories.
