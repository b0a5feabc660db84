"""Data: source adapters, the merged dataset, the data gate's suites, augmentation rewrites and their generators."""
