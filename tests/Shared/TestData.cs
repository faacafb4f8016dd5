using FedAvg.Core.Data;

namespace FedAvg.Tests.Shared;

/// <summary>Finds the repository and the installed datasets the tests run on (real IDX files, never fakes).</summary>
public static class TestData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string DataDir { get; } =
        Environment.GetEnvironmentVariable(DatasetCatalog.DataDirVariable) is { Length: > 0 } dir
            ? Path.GetFullPath(dir)
            : Path.Combine(RepoRoot, "data");

    static readonly Lazy<(LabeledImages Train, LabeledImages Test)> MnistSets = new(() =>
        new DatasetStore(DataDir).Load(DatasetCatalog.Mnist, standardize: false));

    /// <summary>MNIST loaded once per test process and shared read-only.</summary>
    public static LabeledImages MnistTrain => MnistSets.Value.Train;
    public static LabeledImages MnistTest => MnistSets.Value.Test;

    public static string MnistFile(string name) => Path.Combine(DataDir, "mnist", name);

    static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FedAvg.Actors.sln"))) return dir.FullName;
        throw new InvalidOperationException("tests must run inside the repository (FedAvg.Actors.sln not found above the test binaries).");
    }

    public static string TempDir()
    {
        var dir = Directory.CreateTempSubdirectory("fedavg-test-");
        return dir.FullName;
    }
}
