"""Tables and Pareto figures of compression runs (experiments.plot_tuning)."""
