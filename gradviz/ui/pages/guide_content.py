"""The Guide's prose as data: causes and fixes, each with a formula where it helps and demo links.

A link is (label, query) for the Explorer, or (label, query, page file) for another page."""

THROUGH_TIME = "pages/Through_time.py"
COMPARE = "pages/Compare.py"
DEEP_TANH = {"depth": "40", "width": "256", "activation": "tanh", "initializer": "random_normal", "init_std": "0.0625",
             "optimizer": "sgd", "learning_rate": "0.01"}

GUIDE_INTRO = (
    "Backpropagation multiplies one factor per layer on the way from the loss back to the first layer. "
    "If the typical factor is below 1 the product shrinks geometrically with depth (vanishing); above 1 it "
    "grows (exploding). Everything below is a way to keep each factor near 1.")

GUIDE_SECTIONS = [
    ("Cause: saturating activations",
     "The sigmoid's slope is at most 1/4 and tanh's at most 1, and both are near 0 in their tails. Ten sigmoid "
     "layers scale the gradient by at most 4⁻¹⁰, about 1e-6, before the weights even enter.",
     r"\sigma'(z) = \sigma(z)\,(1-\sigma(z)) \le \tfrac14",
     [("Open: 10 sigmoid layers (vanishing)", {"preset": "seed-vanishing-sigmoid"}),
      ("Open: tanh pushed into its tails (saturation)", {"preset": "saturated-tanh"})]),
    ("Cause: initialization scale",
     "Each layer multiplies the signal's variance by its fan-in times the weight variance (times the "
     "activation's gain). Too small and the signal dies out; too large and it blows up - in both passes.",
     r"\mathrm{Var}(h_k) \approx n_{k-1}\,\mathrm{Var}(w_k)\,g\;\mathrm{Var}(h_{k-1})",
     [("Open: 20 linear layers, σ = 0.08 (256 · 0.08² = 1.6 per layer)", {"preset": "exploding-linear"})]),
    ("Cause: depth",
     "More layers, more factors in the product: the same per-layer shrinkage hurts twice as much at twice "
     "the depth.", None,
     [("Open: 20 sigmoid layers", {"depth": "20", "width": "256", "activation": "sigmoid",
                                   "initializer": "glorot_uniform"})]),
    ("Cause: large learning rates",
     "A step that is too large can throw ReLU units into the region where they output 0 for every input; "
     "a dead unit passes no gradient and never recovers.", None,
     [("Open: ReLU with Adam at 0.05 (dead units)", {"preset": "dead-relu"})]),
    ("Cause: recurrent time steps",
     "A recurrent network applies the same matrix at every time step, so the gradient reaching step 1 of "
     "T steps holds that matrix's Jacobian T times: its largest singular value to the power T. A deep "
     "linear network is the same product without the weight sharing.",
     r"\Big\|\frac{\partial h_T}{\partial h_1}\Big\| \lesssim \|W_{hh}\|^{\,T-1}\prod_t |f'(z_t)|",
     [("Open: SimpleRNN vs LSTM vs GRU over 112 time steps", {"step_pixels": "7"}, THROUGH_TIME),
      ("Open: the deep-linear analogue (20 products of 256x256 matrices)", {"preset": "exploding-linear"})]),
    ("Fix: the ReLU family",
     "ReLU's slope is exactly 1 where a unit is active, so it does not shrink the gradient; leaky ReLU, ELU, "
     "SELU and GELU keep some slope for negative inputs so units cannot die.", None,
     [("Open: ReLU + He instead of sigmoid", {"preset": "vanishing-fixed-relu-he"})]),
    ("Cause: the signal fades before training starts",
     "Mean-field theory (Poole et al. 2016; Schoenholz et al. 2017) follows one number per layer: the variance q "
     "of its pre-activations, and χ, the factor by which the squared gradient changes going back through it. "
     "With χ < 1 both the forward signal and the backward gradient fade with depth. A kernel's gradient is its "
     "input times the gradient reaching it, so every layer's gradient is small *together* and the first/last "
     "ratio looks fine while nothing learns: He et al. (2015) saw exactly this with Glorot's init in a 30-layer "
     "ReLU net (ReLU halves the variance: χ = σ_w²/2), Glorot & Bengio (2010) with the 'standard' uniform init "
     "in tanh nets. The explorer's *At initialization* view shows q and the gradients measured beside the "
     "theory, before any training.",
     r"q_{l+1} = \sigma_w^2\,\mathbb{E}_{z\sim\mathcal N(0,q_l)}[\phi(z)^2] \qquad "
     r"\chi = \sigma_w^2\,\mathbb{E}_{z\sim\mathcal N(0,q)}[\phi'(z)^2]",
     [("Open: He et al. 2015 - 30 ReLU layers with Glorot init", {"preset": "he2015-relu-glorot"}),
      ("Open: Glorot & Bengio 2010 - 10 tanh layers, U[-1/√n, 1/√n]", {"preset": "glorot-bengio-tanh-standard"})]),
    ("Fix: Glorot, He and LeCun initialization",
     "Pick the weight variance so each layer keeps the variance of what flows through it: χ = 1.",
     r"\text{Glorot: } \tfrac{2}{n_{in}+n_{out}} \qquad \text{He (ReLU): } \tfrac{2}{n_{in}} \qquad "
     r"\text{LeCun (SELU): } \tfrac{1}{n_{in}}",
     [("Open: 20 linear layers with Glorot init", {"preset": "seed-exploding-linear"}),
      ("Open: the 30 ReLU layers with He init", {"preset": "he2015-relu-he"})]),
    ("Fix: orthogonal initialization and dynamical isometry",
     "χ = 1 keeps the gradient's size on average, but a product of many random Gaussian matrices stretches a few "
     "directions and squashes the rest: its singular values spread out with depth. An orthogonal matrix has all "
     "its singular values equal to 1, so a deep linear network of them keeps every direction's length exactly "
     "(Saxe et al. 2014): learning time stops growing with depth. Pennington et al. (2017) showed that tanh "
     "networks near criticality can have this *dynamical isometry* too, with orthogonal weights, and ReLU "
     "networks cannot. The demo compares 40 tanh layers at σ_w² = 1, Gaussian (A) against orthogonal (B), with "
     "SGD on the same images.",
     r"W^\top W = g^2 I \;\Rightarrow\; \|W x\| = g\,\|x\| \text{ for every } x",
     [("Open: 40 tanh layers, Gaussian vs orthogonal (Compare)", {**DEEP_TANH, "b": "initializer=orthogonal"},
       COMPARE)]),
    ("Fix: batch normalization",
     "Re-centre and re-scale each layer's pre-activations over the batch, so a sigmoid works near its middle, "
     "where its slope is largest.",
     r"\hat z = \gamma\,\frac{z-\mu_B}{\sqrt{\sigma_B^2+\epsilon}} + \beta",
     [("Open: 10 sigmoid layers + batch norm", {"preset": "vanishing-fixed-batchnorm"})]),
    ("Fix: residual connections",
     "Add the block's input to its output. The Jacobian becomes the identity plus a correction, so the "
     "gradient has a path that is not multiplied down at every block.",
     r"\frac{\partial (x + F(x))}{\partial x} = I + \frac{\partial F}{\partial x}",
     [("Open: 10 sigmoid layers with skips", {"preset": "vanishing-fixed-residual"}),
      ("Open: the seed's ReLU + BN + residual CNN", {"preset": "seed-fixed-resnet"})]),
    ("Fix: gradient clipping, by norm and by value",
     "Rescale the gradient when its norm passes a threshold (per tensor: clipnorm; all together: "
     "global_clipnorm), or clamp each element (clipvalue). With SGD this bounds every step; with Adam it "
     "changes little, because Adam already divides by the gradient's running size.",
     r"g \leftarrow g \cdot \min\!\Big(1, \frac{c}{\|g\|}\Big) \qquad g_i \leftarrow \mathrm{clip}(g_i, -v, v)",
     [("Open: the exploding SGD network with clipnorm = 1", {"preset": "exploding-linear-clipped"}),
      ("Open: Adam with clipnorm = 1 (little change)", {"preset": "seed-clipnorm"})]),
    ("Fix: gating in LSTM and GRU",
     "Gated cells carry their state forward by addition, scaled by a forget gate the network learns, instead "
     "of multiplying it by the same matrix at every step - a residual connection through time.",
     r"c_t = f_t \odot c_{t-1} + i_t \odot \tilde c_t",
     [("Open: gradients through time, SimpleRNN vs LSTM vs GRU", {"step_pixels": "7"}, THROUGH_TIME)]),
]
