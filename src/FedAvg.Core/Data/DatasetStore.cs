using System.Security.Cryptography;

namespace FedAvg.Core.Data;

/// <summary>Finds, verifies and loads installed datasets under a data directory (one folder per dataset).</summary>
public sealed class DatasetStore(string dataDir)
{
    public string DataDir { get; } = dataDir;

    public string PathOf(DatasetInfo info, string file) => Path.Combine(DataDir, info.Name, file);

    /// <summary>Checks that every file of the dataset is present and has its committed checksum.</summary>
    public void Verify(DatasetInfo info)
    {
        string folder = Path.Combine(DataDir, info.Name);
        if (!Directory.Exists(folder))
            throw new DataException(
                $"Dataset '{info.Name}' is not installed: {Path.GetFullPath(folder)} does not exist. " +
                $"Install it with `fedavg data install --data-dir {DataDir}` (or scripts/install-data.sh).");
        foreach (var file in info.Files)
        {
            string path = PathOf(info, file);
            if (!File.Exists(path))
                throw new DataException($"{path}: missing file of dataset '{info.Name}'. Reinstall with `fedavg data install`.");
            string key = $"{info.Name}/{file}";
            if (!DatasetCatalog.ExpectedSha256.TryGetValue(key, out var expected))
                throw new DataException($"{key}: no committed checksum in scripts/datasets.sha256.");
            string actual = Sha256(path);
            if (actual != expected)
                throw new DataException($"{path}: checksum mismatch: expected sha256 {expected}, actual {actual}.");
        }
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>Verifies and loads both splits of a dataset.</summary>
    public (LabeledImages Train, LabeledImages Test) Load(DatasetInfo info, bool standardize)
    {
        Verify(info);
        var train = LabeledImages.FromIdx(
            IdxFile.Read(PathOf(info, info.TrainImages), 3), IdxFile.Read(PathOf(info, info.TrainLabels), 1), info, standardize);
        var test = LabeledImages.FromIdx(
            IdxFile.Read(PathOf(info, info.TestImages), 3), IdxFile.Read(PathOf(info, info.TestLabels), 1), info, standardize);
        return (train, test);
    }
}
