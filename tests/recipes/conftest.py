from tests.transforms.conftest import phantom, tiny_weights  # noqa: F401  (shared fixtures)
