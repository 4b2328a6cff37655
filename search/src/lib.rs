//! qnas search: strategies, Pareto fronts, reports and export, and the `qnas` binary's
//! commands as library functions (the binary only parses arguments and prints).

pub mod space_report;
