import torch

from fpkit.config import Config
from fpkit.model import build_model
from fpkit.train.momentum import MomentumEncoder


def test_momentum_copy_follows_the_network_as_a_moving_average(tiny_config: Config) -> None:
    model = build_model(tiny_config)
    copy = MomentumEncoder(model, momentum=0.75)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    copy.follow(model)
    for old, mine, new in zip(before, copy.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(mine, 0.75 * old + 0.25 * new)
        assert not mine.requires_grad
    spec = torch.randn(3, model.dims.n_mels, model.dims.n_frames)
    keys = copy.embed(spec)
    assert keys.shape == (3, model.dims.emb_dim) and not keys.requires_grad
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(3))
