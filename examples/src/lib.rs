//! Holds the runnable examples; the library itself is empty.
#![forbid(unsafe_code)]
