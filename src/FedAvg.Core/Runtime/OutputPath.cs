namespace FedAvg.Core.Runtime;

/// <summary>
/// Checks, leaving nothing behind, that a command can write where it was told to, so that a bad path is refused with a
/// usage error before the work whose results it would hold (a training run, a dataset copy), not after it.
/// </summary>
public static class OutputPath
{
    /// <summary>The path itself or the nearest of its parents that is a file, if any: no directory can be made at or under it.</summary>
    public static string? FileAtOrAbove(string path)
    {
        for (var dir = Path.GetFullPath(path); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
            if (File.Exists(dir)) return dir;
        return null;
    }

    /// <summary>A file the command writes whole (with <see cref="AtomicFile"/>, which makes missing parents).</summary>
    public static void CheckFile(string path, string flag)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new UsageException($"{flag} {full} is a directory; give the file to write.");
        string parent = Path.GetDirectoryName(full)!;
        if (FileAtOrAbove(parent) is { } file) throw new UsageException($"{flag} {full}: {file} is a file, so no directory can be made under it.");
        CheckWritable(parent, flag, full);
    }

    /// <summary>A directory the command writes into (made if missing).</summary>
    public static void CheckDirectory(string path, string flag)
    {
        string full = Path.GetFullPath(path);
        if (FileAtOrAbove(full) is { } file)
            throw new UsageException(file == full
                ? $"{flag} {full} is a file; give a directory."
                : $"{flag} {full}: {file} is a file, so no directory can be made under it.");
        CheckWritable(full, flag, full);
    }

    /// <summary>
    /// Whether a file can be made in the directory, or in its nearest existing parent when it is still to be made.
    /// Owner, mode, ACLs and a read-only mount all decide that, so only trying tells: a probe file is made and
    /// deleted at once.
    /// </summary>
    public static void CheckWritable(string directory, string flag, string named)
    {
        string existing = Path.GetFullPath(directory);
        while (!Directory.Exists(existing)) existing = Path.GetDirectoryName(existing)!; // the root exists
        string probe = Path.Combine(existing, $".fedavg-probe.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using var _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{flag} {named}: cannot write in {existing} ({Reason(e)}).");
        }
    }

    /// <summary>A result file that could not be written after all (the disk filled, the directory went away): named, with the reason.</summary>
    public static OutputException WriteFailed(string path, Exception e) =>
        new($"cannot write {Path.GetFullPath(path)}: {Reason(e)}.", e);

    // .NET says "Access to the path '…/.x.1234.5678.tmp' is denied", naming the temporary file, not the user's.
    static string Reason(Exception e) => e is UnauthorizedAccessException ? "permission denied" : e.Message.TrimEnd('.');
}
