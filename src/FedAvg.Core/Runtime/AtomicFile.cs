namespace FedAvg.Core.Runtime;

/// <summary>Writes files so that a reader sees the old content or the new, never a torn one.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = WriteTemp(full, write, ownerOnly: false);
        try
        {
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public static void WriteAllText(string path, string content) =>
        Write(path, s =>
        {
            using var writer = new StreamWriter(s, leaveOpen: true);
            writer.Write(content);
        });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> content)
    {
        var copy = content.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>
    /// Writes files that belong together (a key and its certificate) so that a failure leaves every one of them as it
    /// was: all are written to temp files beside them first, then renamed over, each old file kept under a hard link
    /// until all are in place and put back if a later rename fails. An <c>OwnerOnly</c> file is created with mode 0600,
    /// so its content is never readable by others, not even in the temp file.
    /// </summary>
    public static void WriteTogether(IReadOnlyList<(string Path, byte[] Content, bool OwnerOnly)> files)
    {
        var temps = new List<string>();
        var backups = new List<(string Backup, string Path)>();
        var created = new List<string>();
        try
        {
            foreach (var (path, content, ownerOnly) in files)
                temps.Add(WriteTemp(Path.GetFullPath(path), s => s.Write(content), ownerOnly));
            for (int i = 0; i < files.Count; i++)
            {
                string full = Path.GetFullPath(files[i].Path);
                if (File.Exists(full))
                {
                    // Replace links the old file to the backup name before renaming over it: nothing is copied, and
                    // the old file keeps its mode
                    string backup = TempName(full);
                    File.Replace(temps[i], full, backup);
                    backups.Add((backup, full));
                }
                else
                {
                    File.Move(temps[i], full);
                    created.Add(full);
                }
            }
        }
        catch
        {
            foreach (var (backup, path) in backups)
                try { File.Move(backup, path, overwrite: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            foreach (var path in created) TryDelete(path);
            foreach (var temp in temps) TryDelete(temp);
            throw;
        }
        foreach (var (backup, _) in backups) TryDelete(backup);
    }

    static string TempName(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    /// <summary>A new temp file in <paramref name="full"/>'s directory holding what <paramref name="write"/> wrote, flushed to disk.</summary>
    static string WriteTemp(string full, Action<Stream> write, bool ownerOnly)
    {
        string temp = TempName(full);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (ownerOnly && !OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var stream = new FileStream(temp, options))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            return temp;
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
