from tests.transforms.conftest import tiny_weights  # noqa: F401  (shared fixture)
