//! Reverse-mode AD on a Wengert list (data-only records) for difi.
