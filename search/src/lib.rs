//! Search strategies, Pareto fronts, reports and export.
