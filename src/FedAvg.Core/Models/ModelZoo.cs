using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FedAvg.Core.Models;

/// <summary>The models of the seeds and of McMahan et al., by name. Inputs are [N,1,28,28] images; outputs are 10 logits.</summary>
public static class ModelZoo
{
    public static IReadOnlyList<string> Names { get; } = ["seed000-cnn", "seed001-2nn", "seed002-cnn", "mcmahan-cnn"];

    static readonly object TorchRngGate = new();

    /// <summary>
    /// Builds a freshly initialised model. Initialisation draws from libtorch's global generator, so it is
    /// seeded and serialised here: the same name and seed always give the same weights.
    /// </summary>
    public static Module<Tensor, Tensor> Create(string name, long seed = 0)
    {
        lock (TorchRngGate)
        {
            torch.manual_seed(seed);
            // ReLU then 2×2 max-pool is one ReluMaxPool2d module: the same function and gradients, 4-5× faster
            // than libtorch's pair (see ReluMaxPool2d). Parameter names are the seeds' (conv1, fc1, ...).
            return name switch
            {
                // seed 000: conv 1→10 k5, pool, conv 10→20 k5, pool, fc 320→50→10
                "seed000-cnn" => Sequential(
                    ("conv1", Conv2d(1, 10, 5)), ("relu_pool1", new ReluMaxPool2d()),
                    ("conv2", Conv2d(10, 20, 5)), ("relu_pool2", new ReluMaxPool2d()),
                    ("flatten", Flatten()),
                    ("fc1", Linear(320, 50)), ("relu3", ReLU()),
                    ("fc2", Linear(50, 10))),
                // seed 001 and McMahan's 2NN: 784→200→200→10
                "seed001-2nn" => Sequential(
                    ("flatten", Flatten()),
                    ("fc1", Linear(784, 200)), ("relu1", ReLU()),
                    ("fc2", Linear(200, 200)), ("relu2", ReLU()),
                    ("fc3", Linear(200, 10))),
                // seed 002's SimpleCNN: conv 1→32 k3, pool, conv 32→64 k3, pool, fc 1600→128→10
                "seed002-cnn" => Sequential(
                    ("conv1", Conv2d(1, 32, 3)), ("relu_pool1", new ReluMaxPool2d()),
                    ("conv2", Conv2d(32, 64, 3)), ("relu_pool2", new ReluMaxPool2d()),
                    ("flatten", Flatten()),
                    ("fc1", Linear(1600, 128)), ("relu3", ReLU()),
                    ("fc2", Linear(128, 10))),
                // McMahan et al. 2017's CNN: 5×5 conv 32 and 64 ('same' padding), each with 2×2 max-pool, fc 512, 10 outputs
                "mcmahan-cnn" => Sequential(
                    ("conv1", Conv2d(1, 32, 5, padding: 2)), ("relu_pool1", new ReluMaxPool2d()),
                    ("conv2", Conv2d(32, 64, 5, padding: 2)), ("relu_pool2", new ReluMaxPool2d()),
                    ("flatten", Flatten()),
                    ("fc1", Linear(3136, 512)), ("relu3", ReLU()),
                    ("fc2", Linear(512, 10))),
                _ => throw new UsageException($"Unknown model '{name}'. Valid models: {string.Join(", ", Names)}."),
            };
        }
    }

    public static void Validate(string name)
    {
        if (!Names.Contains(name)) throw new UsageException($"Unknown model '{name}'. Valid models: {string.Join(", ", Names)}.");
    }
}
