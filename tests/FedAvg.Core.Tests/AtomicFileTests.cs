using FedAvg.Core.Runtime;
using FedAvg.Tests.Shared;

namespace FedAvg.Core.Tests;

/// <summary>Every result file and the installed datasets go through AtomicFile: a failed write must leave the old file and nothing else.</summary>
public class AtomicFileTests
{
    [Fact]
    public void A_write_that_throws_leaves_the_old_content_and_no_temporary_file()
    {
        string dir = TestData.TempDir();
        string path = Path.Combine(dir, "results.csv");
        File.WriteAllText(path, "old");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            s.Write("half of the new"u8);
            throw new IOException("No space left on device");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["results.csv"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void A_rename_onto_a_directory_fails_and_deletes_the_temporary_file()
    {
        string dir = TestData.TempDir();
        string path = Path.Combine(dir, "train-images-idx3-ubyte");
        Directory.CreateDirectory(path);
        Assert.ThrowsAny<IOException>(() => AtomicFile.WriteAllBytes(path, new byte[1 << 20]));
        Assert.True(Directory.Exists(path));
        Assert.Equal(["train-images-idx3-ubyte"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Two_writes_of_one_file_at_once_use_different_temporary_files()
    {
        string dir = TestData.TempDir();
        string path = Path.Combine(dir, "data.bin");
        // the second write runs to its end while the first one's temporary file is open: with one fixed temporary
        // name (path + ".tmp", as the installer had) the second could not create it, or would write into the first's
        AtomicFile.Write(path, s =>
        {
            s.Write("first"u8);
            AtomicFile.WriteAllText(path, "second");
            Assert.Equal("second", File.ReadAllText(path));
        });
        Assert.Equal("first", File.ReadAllText(path));
        Assert.Equal(["data.bin"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }
}
