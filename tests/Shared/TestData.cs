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

    /// <summary>
    /// A fresh directory under this test process's own root, which is deleted when the process exits.
    /// A root left by a process that was killed (its pid file names a process that no longer runs)
    /// is deleted by the next test process. Before this, every run left its directories behind:
    /// 2,494 of them, 4 GB, had filled the disk the CI shares.
    /// </summary>
    public static string TempDir() => Directory.CreateDirectory(Path.Combine(ProcessRoot.Value, Guid.NewGuid().ToString("N")[..12])).FullName;

    const string RootPrefix = "fedavg-tests-";
    const string PidFile = "pid";

    static readonly Lazy<string> ProcessRoot = new(() =>
    {
        DeleteAbandonedRoots();
        var root = Directory.CreateTempSubdirectory(RootPrefix).FullName;
        File.WriteAllText(Path.Combine(root, PidFile), Environment.ProcessId.ToString());
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(root);
        return root;
    });

    static void DeleteAbandonedRoots()
    {
        foreach (var root in Directory.EnumerateDirectories(Path.GetTempPath(), RootPrefix + "*"))
        {
            var pidPath = Path.Combine(root, PidFile);
            if (!File.Exists(pidPath) || !int.TryParse(File.ReadAllText(pidPath), out var pid) || IsRunning(pid)) continue;
            TryDelete(root);
        }
    }

    static bool IsRunning(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
