"""Training, dataset preparation and evaluation."""
