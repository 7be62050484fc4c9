"""Models of "a user's own", none of them in the zoo, with data made here and a few
seconds of training: what the faces must open as they open the zoo's.

- ``tabular_mlp``: 5 named features, 3 classes (which two features are large decides);
- ``image_cnn``: 1×12×12 images, batch-norm and in-place ReLU the torchvision way, 3
  classes (where a bright square sits), ground-truth masks of the square;
- ``token_classifier``: an embedding, mean over positions, a linear head, with a
  vocabulary; the class is whether "good" or "bad" occurs;
- ``autoencoder``: a dense autoencoder on 6×6 images with ``encoder``/``decoder``
  attributes (the latent code is inferred as a part).

This file is also a ``--model-file`` for the CLI: ``tests/own_models.py:tabular_mlp``.
"""

from __future__ import annotations

import torch
from torch import nn

SEED = 0
FEATURES = ["height", "width", "depth", "weight", "age"]
TABULAR_CLASSES = ["small", "tall", "heavy"]
SHAPES_CLASSES = ["left", "centre", "right"]
VOCAB = ["<pad>", "the", "film", "was", "good", "bad", "very", "plot", "and", "acting"]
SENTIMENT = ["negative", "positive"]


class TabularMLP(nn.Module):
    def __init__(self, features: int = 5, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                                 nn.Linear(16, classes))

    def forward(self, x):
        return self.net(x)


class ImageCNN(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((3, 3)))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 9, 32), nn.ReLU(inplace=True),
                                        nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class TokenClassifier(nn.Module):
    def __init__(self, vocab: int = len(VOCAB), classes: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 16, padding_idx=0)
        self.hidden = nn.Linear(16, 16)
        self.act = nn.Tanh()
        self.head = nn.Linear(16, classes)

    def forward(self, ids):
        return self.head(self.act(self.hidden(self.embedding(ids).mean(1))))


class Autoencoder(nn.Module):
    def __init__(self, side: int = 6, latent: int = 4):
        super().__init__()
        self.side = side
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 24), nn.ReLU(), nn.Linear(24, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 24), nn.ReLU(), nn.Linear(24, side * side), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x)).reshape(x.shape)


# ---------------------------------------------------------------------------- factories (--model-file targets)

def tabular_mlp() -> nn.Module:
    return TabularMLP()


def image_cnn() -> nn.Module:
    return ImageCNN()


def token_classifier() -> nn.Module:
    return TokenClassifier()


def autoencoder() -> nn.Module:
    return Autoencoder()


# ---------------------------------------------------------------------------- data

def tabular_data(n: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) * 0.5
    x[y == 1, 0] += 2.0  # tall: height
    x[y == 2, 3] += 2.0  # heavy: weight
    return x, y


def image_data(n: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.rand(n, 1, 12, 12, generator=g) * 0.3
    truth = torch.zeros(n, 1, 12, 12, dtype=torch.bool)
    for i in range(n):
        col = (1, 5, 8)[int(y[i])]
        row = int(torch.randint(1, 8, (1,), generator=g))
        x[i, 0, row:row + 3, col:col + 3] = 1.0
        truth[i, 0, row:row + 3, col:col + 3] = True
    return x, y, truth


def token_data(n: int, length: int = 8, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    filler = torch.tensor([1, 2, 3, 6, 7, 8, 9])
    ids = filler[torch.randint(0, len(filler), (n, length), generator=g)]
    y = torch.randint(0, 2, (n,), generator=g)
    where = torch.randint(0, length - 2, (n,), generator=g)
    ids[torch.arange(n), where] = torch.where(y == 1, 4, 5)  # "good" or "bad"
    ids[:, -2:] = 0  # padding at the end
    return ids, y


def ae_data(n: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 6, 6, generator=g) * 0.2
    x[y == 0, 0, 1:5, 2:4] = 0.9  # a vertical bar
    x[y == 1, 0, 2:4, 1:5] = 0.9  # a horizontal bar
    return x, y


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, epochs: int = 60, lr: float = 0.02) -> nn.Module:
    """Full-batch Adam: a few seconds at most; the model comes back in eval mode."""
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.mse_loss(out, x) if y is None else nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
    return model.eval()


N = 96  # samples each subject shows: small, so every face stays quick


def trained() -> dict:
    """name -> (model, data dict with x, y and maybe truth, names for the Subject)."""
    x, y = tabular_data(400)
    mlp = fit(TabularMLP(), x, y)
    xi, yi, ti = image_data(300)
    cnn = fit(ImageCNN(), xi, yi, epochs=40)
    xt, yt = token_data(400)
    tok = fit(TokenClassifier(), xt, yt, epochs=80)
    xa, ya = ae_data(300)
    ae = fit(Autoencoder(), xa, None, epochs=150)
    return {
        "tabular_mlp": (mlp, {"x": x[-N:], "y": y[-N:]},
                        {"classes": TABULAR_CLASSES, "features": FEATURES}),
        "image_cnn": (cnn, {"x": xi[-N:], "y": yi[-N:], "truth": ti[-N:]}, {"classes": SHAPES_CLASSES}),
        "token_classifier": (tok, {"x": xt[-N:], "y": yt[-N:]},
                             {"classes": SENTIMENT, "vocab": VOCAB, "pad_id": 0}),
        "autoencoder": (ae, {"x": xa[-N:], "y": ya[-N:]}, {"classes": ["vertical", "horizontal"]}),
    }


def subjects():
    """The four as interp.Subjects: a ``--subject tests/own_models.py:subjects`` target."""
    import interp

    models = trained()
    own = [interp.Subject(model, (data["x"], data["y"]), truth=data.get("truth"), name=name, **names)
           for name, (model, data, names) in models.items()]
    mlp, data, _ = models["tabular_mlp"]
    return own + [interp.Subject(mlp, data["x"], name="unlabelled")]  # no labels: classes and colours inferred


class ConvAutoencoder(nn.Module):
    """Convolutional codes (maps, not vectors): no traversal, the latent unit flattened."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(2, 1, 2, stride=2), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class VAEncoder(nn.Module):
    def __init__(self, latent: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU())
        self.mu, self.lv = nn.Linear(16, latent), nn.Linear(16, latent)

    def forward(self, x):
        h = self.body(x)
        return self.mu(h), self.lv(h)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = VAEncoder()
        self.decoder = nn.Sequential(nn.Linear(3, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6)))

    def forward(self, x):
        return self.decoder(self.encoder(x)[0])
