from tests.training.conftest import phantom_simulator  # noqa: F401  (shared fixture)
from tests.transforms.conftest import tiny_weights  # noqa: F401  (shared fixture)
