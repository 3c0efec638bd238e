"""The built-in data set entries, one module per task; importing this package registers them
(in this order, which `cosmobench data list` keeps)."""
from cosmobench.datasets.entries import photoz, morphology, massmapping, deblending, lensfinding, sbi  # noqa: F401,I001
